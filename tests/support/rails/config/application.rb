# The app for the end-to-end tests (config.ru serves it; bin/rails runs its commands).
require "digest"
require "rails"
require "action_controller/railtie"

# The handoff tests' failure cases: a rotated value that makes the app fail while it boots.
case ENV["TEST_BOOT"]
when "crash" then raise "TEST_BOOT=crash: failing at boot on purpose"
when "hang" then sleep
end

# A database connection opened at boot with the DATABASE_* variables of a Secrets Manager
# secret of RDS's shape (username, password, engine, host, port, dbname), as an app that
# touches its database while it boots: a wrong password fails the boot.
if ENV["DATABASE_ENGINE"] == "postgres" && ENV["DATABASE_HOST"]
  require "pg"
  DB = PG.connect(
    host: ENV.fetch("DATABASE_HOST"), port: ENV.fetch("DATABASE_PORT"),
    dbname: ENV.fetch("DATABASE_DBNAME"), user: ENV.fetch("DATABASE_USERNAME"),
    password: ENV.fetch("DATABASE_PASSWORD"),
  )
  DB_LOCK = Mutex.new
end

class SecretsAgentTestApp < Rails::Application
  config.root = File.expand_path("..", __dir__)
  config.eager_load = false
  # What production's config.eager_load does for the routes (eager loading is left off here for
  # the boot time): their patterns are compiled at boot, not by the first requests. Rails 6.1
  # (Debian's) compiles them lazily and not thread-safely (rails/rails#43431): a new puma that
  # takes four concurrent requests the moment it is ready answered two of them with a 500.
  config.after_initialize { Rails.application.routes.eager_load! }
  config.logger = Logger.new($stderr)
  config.log_level = :warn
  config.hosts.clear
  config.secret_key_base = ENV.fetch("SECRET_KEY_BASE", nil) if Rails.env.development?
  routes.append do
    get "/health" => "probe#health"
    get "/secret" => "probe#secret"
    get "/env/:name" => "probe#env_digest"
    get "/credential/:name" => "probe#credential_digest"
    get "/served/:name" => "probe#served"
    get "/db" => "probe#db"
  end
end

class ProbeController < ActionController::Base
  # Touching the session forces Rails to use secret_key_base on every request.
  def health
    session[:seen] = true
    render plain: "ok"
  end

  # A digest of the key Rails actually uses; never the key itself.
  def secret
    session[:seen] = true
    render json: {
      secret_key_base_sha256: Digest::SHA256.hexdigest(Rails.application.secret_key_base.to_s),
      pid: Process.pid,
    }
  end

  # A digest of one value of the encrypted credentials (config/credentials/production.yml.enc,
  # read with config/credentials/production.key or RAILS_MASTER_KEY); never the value.
  def credential_digest
    value = Rails.application.credentials[params[:name].to_sym]
    render json: { name: params[:name], present: !value.nil?,
                   sha256: value && Digest::SHA256.hexdigest(value.to_s) }
  end

  # Which process served, and the digest of one of its variables (the handoff tests).
  def served
    value = ENV[params[:name]]
    render json: { pid: Process.pid, sha256: value && Digest::SHA256.hexdigest(value) }
  end

  # One query on the PostgreSQL connection the app opened at boot (below).
  def db
    row = DB_LOCK.synchronize { DB.exec("SELECT current_user AS who, 1 + 1 AS two").first }
    render json: { pid: Process.pid, who: row["who"], two: row["two"].to_i,
                   sha256: Digest::SHA256.hexdigest(ENV.fetch("DATABASE_PASSWORD")) }
  end

  def env_digest
    value = ENV[params[:name]]
    render json: { name: params[:name], present: !value.nil?,
                   sha256: value && Digest::SHA256.hexdigest(value) }
  end
end

