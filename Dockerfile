# mailhelpdesk in a container:
#   docker build -t mailhelpdesk .
#   docker run -d --name helpdesk -v helpdesk-data:/data -v $PWD/mailhelpdesk.toml:/data/mailhelpdesk.toml:ro \
#     -e MAILHELPDESK_PASSWORD=... mailhelpdesk
# State, token and config live in /data (state_file and token_file paths are relative to the config file).
FROM python:3.12-slim
RUN useradd --system --home /data --create-home mailhelpdesk
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mailhelpdesk ./mailhelpdesk
RUN pip install --no-cache-dir . && rm -rf /src
USER mailhelpdesk
WORKDIR /data
ENV MAILHELPDESK_CONFIG=/data/mailhelpdesk.toml PYTHONUNBUFFERED=1
HEALTHCHECK --interval=5m --timeout=30s CMD ["mailhelpdesk", "status"]
ENTRYPOINT ["mailhelpdesk"]
CMD ["run", "--log-format", "json"]
