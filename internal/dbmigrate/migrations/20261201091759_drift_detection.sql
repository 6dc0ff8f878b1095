-- +goose Up
-- modify "integrations" table
ALTER TABLE "integrations" ADD COLUMN "drift_action" character varying NOT NULL DEFAULT 'CORRECT', ADD COLUMN "users_delta_link" character varying NULL, ADD COLUMN "groups_delta_link" character varying NULL, ADD COLUMN "drift_checked_at" timestamptz NULL;
-- modify "remote_links" table
ALTER TABLE "remote_links" ADD COLUMN "drift" jsonb NULL;

-- +goose Down
-- reverse: modify "remote_links" table
ALTER TABLE "remote_links" DROP COLUMN "drift";
-- reverse: modify "integrations" table
ALTER TABLE "integrations" DROP COLUMN "drift_checked_at", DROP COLUMN "groups_delta_link", DROP COLUMN "users_delta_link", DROP COLUMN "drift_action";
