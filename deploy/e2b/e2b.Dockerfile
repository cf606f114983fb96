# E2B template: E2B's base image plus sandbox-agent from a release via install.sh
# (checksum-verified). The agents are installed at first use with
# `sandbox-agent install-agent <name>`, or bake them in by uncommenting the last RUN.
FROM e2bdev/code-interpreter:latest
ARG VERSION
RUN curl -fsSL --connect-timeout 10 --max-time 300 \
      "https://github.com/sandbox-agent-go/sandbox-agent/releases/download/v${VERSION}/install.sh" \
    | sh -s -- --version "${VERSION}" --dir /usr/local/bin
# RUN for a in claude codex; do sandbox-agent install-agent "$a" || exit 1; done
