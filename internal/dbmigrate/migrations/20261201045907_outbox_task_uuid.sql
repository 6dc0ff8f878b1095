-- +goose Up
-- modify "outbox" table
ALTER TABLE "outbox" ADD COLUMN "task_uuid" uuid NOT NULL DEFAULT gen_random_uuid(), ADD COLUMN "job_item_id" character varying NULL;
-- create index "outbox_job_item" to table: "outbox"
CREATE INDEX "outbox_job_item" ON "outbox" ("job_item_id") WHERE (job_item_id IS NOT NULL);
-- rows written before the column: the item is in the reconcile payload (so the sweeper finds their task)
UPDATE "outbox" SET "job_item_id" = NULLIF(convert_from("payload", 'UTF8')::jsonb ->> 'item', '') WHERE "kind" = 'reconcile:user:v1';

-- +goose Down
-- reverse: create index "outbox_job_item" to table: "outbox"
DROP INDEX "outbox_job_item";
-- reverse: modify "outbox" table
ALTER TABLE "outbox" DROP COLUMN "job_item_id", DROP COLUMN "task_uuid";
