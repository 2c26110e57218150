"""Mail as bytes and as words, without I/O: parsing RFC 5322, the mail factory, rendering, composing."""
