-- +goose Up
-- modify "job_items" table
ALTER TABLE "job_items" ADD COLUMN "remote_id" character varying NULL, ADD COLUMN "user_principal_name" character varying NULL, ADD COLUMN "email" character varying NULL, ADD COLUMN "username" character varying NULL, ADD COLUMN "note" character varying NULL;
-- create index "job_items_job_remote_id_key" to table: "job_items"
CREATE UNIQUE INDEX "job_items_job_remote_id_key" ON "job_items" ("job_id", "remote_id") WHERE (remote_id IS NOT NULL);
-- create index "jobitem_job_id_id" to table: "job_items"
CREATE INDEX "jobitem_job_id_id" ON "job_items" ("job_id", "id");
-- modify "jobs" table
ALTER TABLE "jobs" ADD COLUMN "checkpoint" character varying NULL;
-- modify "notifications" table
ALTER TABLE "notifications" ADD COLUMN "job_id" character varying NULL;
-- create index "notification_organization_id_created_at" to table: "notifications"
CREATE INDEX "notification_organization_id_created_at" ON "notifications" ("organization_id", "created_at");

-- +goose Down
-- reverse: create index "notification_organization_id_created_at" to table: "notifications"
DROP INDEX "notification_organization_id_created_at";
-- reverse: modify "notifications" table
ALTER TABLE "notifications" DROP COLUMN "job_id";
-- reverse: modify "jobs" table
ALTER TABLE "jobs" DROP COLUMN "checkpoint";
-- reverse: create index "jobitem_job_id_id" to table: "job_items"
DROP INDEX "jobitem_job_id_id";
-- reverse: create index "job_items_job_remote_id_key" to table: "job_items"
DROP INDEX "job_items_job_remote_id_key";
-- reverse: modify "job_items" table
ALTER TABLE "job_items" DROP COLUMN "note", DROP COLUMN "username", DROP COLUMN "email", DROP COLUMN "user_principal_name", DROP COLUMN "remote_id";
