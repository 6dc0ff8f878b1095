-- +goose Up
-- modify "remote_links" table
ALTER TABLE "remote_links" ADD COLUMN "owner_marked" boolean NOT NULL DEFAULT false;

-- +goose Down
-- reverse: modify "remote_links" table
ALTER TABLE "remote_links" DROP COLUMN "owner_marked";
