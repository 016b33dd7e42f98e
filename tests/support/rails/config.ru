# A minimal Rails app for the end-to-end tests: production mode refuses to serve without
# SECRET_KEY_BASE, so a 200 from it proves the agent delivered the secret.
require_relative "config/environment"
run Rails.application
