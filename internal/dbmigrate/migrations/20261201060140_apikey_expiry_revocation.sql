-- +goose Up
-- modify "api_keys" table
ALTER TABLE "api_keys" ADD COLUMN "expires_at" timestamptz NULL, ADD COLUMN "revoked_at" timestamptz NULL;

-- +goose Down
-- reverse: modify "api_keys" table
ALTER TABLE "api_keys" DROP COLUMN "revoked_at", DROP COLUMN "expires_at";
