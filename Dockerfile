# mailhelpdesk in a container:
#   docker build -t mailhelpdesk .
#   docker run -d --name helpdesk -v helpdesk-data:/data \
#     -v "$PWD/mailhelpdesk.toml:/etc/mailhelpdesk/mailhelpdesk.toml:ro" -e MAILHELPDESK_PASSWORD=... mailhelpdesk
#   docker exec helpdesk mailhelpdesk tickets        # status, report, digest --print need no password
# The config is read-only in /etc/mailhelpdesk; the state lives in the /data volume ($STATE_DIRECTORY: a relative
# [helpdesk] state_file goes there). Gmail: token_file = "/data/token.json".
FROM python:3.12-slim
RUN useradd --system --home-dir /data --create-home --shell /usr/sbin/nologin mailhelpdesk
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mailhelpdesk ./mailhelpdesk
RUN pip install --no-cache-dir . && rm -rf /src
USER mailhelpdesk
WORKDIR /data
VOLUME /data
ENV MAILHELPDESK_CONFIG=/etc/mailhelpdesk/mailhelpdesk.toml STATE_DIRECTORY=/data PYTHONUNBUFFERED=1
HEALTHCHECK --interval=5m --timeout=30s CMD ["mailhelpdesk", "status"]
ENTRYPOINT ["mailhelpdesk"]
CMD ["run", "--log-format", "json"]
