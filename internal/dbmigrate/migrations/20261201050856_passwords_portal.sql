-- +goose Up
-- modify "notifications" table
ALTER TABLE "notifications" ADD COLUMN "secret_sealed" character varying NULL;
-- modify "organizations" table
ALTER TABLE "organizations" ADD COLUMN "password_max_age_days" bigint NULL, ADD COLUMN "lockout_threshold" bigint NOT NULL DEFAULT 10, ADD COLUMN "lockout_minutes" bigint NOT NULL DEFAULT 15;
-- modify "remote_links" table
ALTER TABLE "remote_links" ADD COLUMN "password_version" bigint NOT NULL DEFAULT 0, ADD COLUMN "password_queued_version" bigint NOT NULL DEFAULT 0, ADD COLUMN "password_pushed_at" timestamptz NULL, ADD COLUMN "password_error_code" character varying NULL, ADD COLUMN "password_error_message" character varying NULL;
-- modify "users" table
ALTER TABLE "users" ADD COLUMN "password_version" bigint NOT NULL DEFAULT 0;
-- create "user_tokens" table
CREATE TABLE "user_tokens" ("id" character varying NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "kind" character varying NOT NULL, "token_hash" bytea NOT NULL, "expires_at" timestamptz NOT NULL, "user_id" character varying NOT NULL, "organization_id" character varying NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "user_tokens_organizations_organization" FOREIGN KEY ("organization_id") REFERENCES "organizations" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION, CONSTRAINT "user_tokens_users_tokens" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON UPDATE NO ACTION ON DELETE CASCADE);
-- create index "user_tokens_token_hash_key" to table: "user_tokens"
CREATE UNIQUE INDEX "user_tokens_token_hash_key" ON "user_tokens" ("token_hash");
-- create index "usertoken_expires_at" to table: "user_tokens"
CREATE INDEX "usertoken_expires_at" ON "user_tokens" ("expires_at");
-- create index "usertoken_user_id_kind" to table: "user_tokens"
CREATE INDEX "usertoken_user_id_kind" ON "user_tokens" ("user_id", "kind");

-- +goose Down
-- reverse: create index "usertoken_user_id_kind" to table: "user_tokens"
DROP INDEX "usertoken_user_id_kind";
-- reverse: create index "usertoken_expires_at" to table: "user_tokens"
DROP INDEX "usertoken_expires_at";
-- reverse: create index "user_tokens_token_hash_key" to table: "user_tokens"
DROP INDEX "user_tokens_token_hash_key";
-- reverse: create "user_tokens" table
DROP TABLE "user_tokens";
-- reverse: modify "users" table
ALTER TABLE "users" DROP COLUMN "password_version";
-- reverse: modify "remote_links" table
ALTER TABLE "remote_links" DROP COLUMN "password_error_message", DROP COLUMN "password_error_code", DROP COLUMN "password_pushed_at", DROP COLUMN "password_queued_version", DROP COLUMN "password_version";
-- reverse: modify "organizations" table
ALTER TABLE "organizations" DROP COLUMN "lockout_minutes", DROP COLUMN "lockout_threshold", DROP COLUMN "password_max_age_days";
-- reverse: modify "notifications" table
ALTER TABLE "notifications" DROP COLUMN "secret_sealed";
