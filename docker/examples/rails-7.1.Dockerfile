# syntax=docker/dockerfile:1
# The Dockerfile `rails new` generates (Rails 7.1+), with secrets-agent: the agent comes from its
# image in one COPY line (no Python in this image) and runs before bin/docker-entrypoint, so
# `db:prepare` already sees DATABASE_URL. Build the agent image first, from the secrets-agent
# repository:  docker build -f docker/agent.Dockerfile -t secrets-agent:0.2.0 .
# Then, from the root of the Rails app:  docker build -t app .
#
# The master key: the agent writes RAILS_MASTER_KEY to tmp/master.key (SECRETS_AGENT_FILES), a
# folder the rails user may write, and config/credentials/production.key is a link to it (the
# image's config/ belongs to root). Task definition:
#   PARAMETER_STORE_PREFIX=/kptboard/prod
#   SECRETS_AGENT_FILES=RAILS_MASTER_KEY=tmp/master.key
ARG BASE_IMAGE=ruby:3.3-slim-bookworm
ARG AGENT_IMAGE=secrets-agent:0.2.0
FROM ${AGENT_IMAGE} AS secrets-agent

FROM ${BASE_IMAGE} AS base
WORKDIR /rails
ENV RAILS_ENV="production" \
    BUNDLE_WITHOUT="development:test"

FROM base AS build
# (The generated file installs build-essential, git and the database's headers here.)
COPY Gemfile Gemfile.lock ./
# (ruby:* images keep the gems in /usr/local/bundle; a base with Debian's gems has none.)
RUN bundle install && mkdir -p /usr/local/bundle
COPY . .

FROM base
COPY --from=build /usr/local/bundle /usr/local/bundle
COPY --from=build /rails /rails
COPY --from=secrets-agent /opt/secrets-agent /opt/secrets-agent

RUN groupadd --system --gid 1000 rails \
 && useradd rails --uid 1000 --gid 1000 --create-home --shell /bin/bash \
 && mkdir -p db log storage tmp config/credentials \
 && chown -R rails:rails db log storage tmp \
 && ln -sfn ../../tmp/master.key config/credentials/production.key
USER 1000:1000

ENTRYPOINT ["/opt/secrets-agent/docker-entrypoint", "/rails/bin/docker-entrypoint"]
EXPOSE 3000
CMD ["./bin/rails", "server", "-b", "0.0.0.0"]
