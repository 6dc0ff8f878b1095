-- +goose Up
-- modify "events" table
ALTER TABLE "events" ADD COLUMN "group_id" character varying NULL;
-- modify "job_items" table
ALTER TABLE "job_items" ADD COLUMN "group_id" character varying NULL, ADD COLUMN "detail" character varying NULL;
-- modify "remote_links" table
ALTER TABLE "remote_links" ADD COLUMN "display_name" character varying NULL, ADD COLUMN "members_in_sync" bigint NOT NULL DEFAULT 0, ADD COLUMN "members_pending" bigint NOT NULL DEFAULT 0, ADD COLUMN "foreign_members" bigint NOT NULL DEFAULT 0, ADD COLUMN "member_ids" jsonb NULL, ADD COLUMN "members_dirty" boolean NOT NULL DEFAULT false, ADD COLUMN "group_id" character varying NULL, ADD CONSTRAINT "remote_links_user_groups_links" FOREIGN KEY ("group_id") REFERENCES "user_groups" ("id") ON UPDATE NO ACTION ON DELETE SET NULL;
-- create index "remote_links_integration_group_key" to table: "remote_links"
CREATE UNIQUE INDEX "remote_links_integration_group_key" ON "remote_links" ("integration_id", "group_id");

-- +goose Down
-- reverse: create index "remote_links_integration_group_key" to table: "remote_links"
DROP INDEX "remote_links_integration_group_key";
-- reverse: modify "remote_links" table
ALTER TABLE "remote_links" DROP CONSTRAINT "remote_links_user_groups_links", DROP COLUMN "group_id", DROP COLUMN "members_dirty", DROP COLUMN "member_ids", DROP COLUMN "foreign_members", DROP COLUMN "members_pending", DROP COLUMN "members_in_sync", DROP COLUMN "display_name";
-- reverse: modify "job_items" table
ALTER TABLE "job_items" DROP COLUMN "detail", DROP COLUMN "group_id";
-- reverse: modify "events" table
ALTER TABLE "events" DROP COLUMN "group_id";
