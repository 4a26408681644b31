# sagaline: one image for the worker, the GraphQL API and the migrations (`sagaline <subcommand>`).

# GraphiQL's scripts and styles, served by the API itself: the npm versions that the pinned
# strawberry's page names (`api/graphiql.py` lists them), installed from the npm registry.
FROM python:3.11-slim AS graphiql-versions
COPY requirements.lock /tmp/
COPY api/graphiql.py /tmp/graphiql.py
RUN pip install --no-cache-dir "$(grep -i '^strawberry-graphql==' /tmp/requirements.lock)" \
    && python /tmp/graphiql.py > /tmp/graphiql-packages

FROM node:20-slim AS graphiql
COPY --from=graphiql-versions /tmp/graphiql-packages /tmp/
RUN npm install --no-save --no-package-lock --no-audit --no-fund --prefix /graphiql \
    $(cat /tmp/graphiql-packages)

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

# Dependencies first, in their own layer, pinned by requirements.lock as `make` pins them:
# rebuilt only when pyproject.toml or the lock changes.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(deps))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -c requirements.lock -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project, installed in place (editable): the packages stay at /app/<package>, so
# `sagaline migrate` finds /app/migrations beside /app/runtime.
# The project's bytecode is compiled here, once: PYTHONDONTWRITEBYTECODE stops writing it at
# run time, and a workflow's sandbox imports its module again for every workflow run, which
# without bytecode compiles it from source each time.
COPY . .
RUN pip install --no-cache-dir --no-deps -e . \
    && python -m compileall -q activities adapters api domain projections runtime workflows \
    && test -d /app/migrations \
    && python -c "import runtime, pathlib; assert pathlib.Path(runtime.__file__).resolve().parent == pathlib.Path('/app/runtime')"

COPY --from=graphiql /graphiql /app/build/graphiql

USER sagaline

EXPOSE 8000

CMD ["sagaline", "api"]
