# sagaline: one image for the worker, the GraphQL API and the migrations (`sagaline <subcommand>`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SAGALINE_DATA_DIR=/var/lib/sagaline

RUN groupadd --system --gid 10001 sagaline \
    && useradd --system --uid 10001 --gid sagaline --create-home --home-dir /home/sagaline \
       --shell /usr/sbin/nologin sagaline \
    && mkdir -p /var/lib/sagaline \
    && chown sagaline:sagaline /var/lib/sagaline

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(deps))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project, installed in place (editable): the packages stay at /app/<package>, so
# `sagaline migrate` finds /app/migrations beside /app/runtime.
COPY . .
RUN pip install --no-cache-dir --no-deps -e . \
    && test -d /app/migrations \
    && python -c "import runtime, pathlib; assert pathlib.Path(runtime.__file__).resolve().parent == pathlib.Path('/app/runtime')"

USER sagaline

EXPOSE 8000

CMD ["sagaline", "api"]
