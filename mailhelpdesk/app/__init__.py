"""What runs: the daemon's loop, the only module that acts (effects), health, the CLI and its commands."""
