# One stage, as docker/Dockerfile, with the agent from its image instead of a virtualenv: no
# python3, no venv, no shebang rewrite. Build the agent image first, from the secrets-agent
# repository:  docker build -f docker/agent.Dockerfile -t secrets-agent:0.2.0 .
# Then, from the root of the Rails app:  docker build -t app .
ARG BASE_IMAGE=ruby:3.3-slim-bookworm
ARG AGENT_IMAGE=secrets-agent:0.2.0
FROM ${AGENT_IMAGE} AS secrets-agent

FROM ${BASE_IMAGE}
COPY --from=secrets-agent /opt/secrets-agent /opt/secrets-agent

WORKDIR /app
COPY Gemfile Gemfile.lock ./
RUN bundle config set --local without 'development test' && bundle install
COPY . .
RUN useradd app --uid 1000 --create-home --shell /bin/bash \
 && mkdir -p tmp log && chown -R app tmp log
USER 1000

ENV RAILS_ENV=production RAILS_LOG_TO_STDOUT=1
EXPOSE 3000
ENTRYPOINT ["/opt/secrets-agent/docker-entrypoint"]
CMD ["bundle", "exec", "rails", "server", "-b", "0.0.0.0", "-p", "3000"]
