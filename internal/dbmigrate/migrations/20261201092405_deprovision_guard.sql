-- +goose Up
-- modify "integrations" table
ALTER TABLE "integrations" ADD COLUMN "deprovision_threshold" bigint NULL, ADD COLUMN "deprovision_guard_off" boolean NOT NULL DEFAULT false;
-- create "deprovision_batches" table
CREATE TABLE "deprovision_batches" ("id" character varying NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "integration_id" character varying NOT NULL, "job_id" character varying NOT NULL, "planned" bigint NOT NULL, "threshold" bigint NOT NULL, "window_planned" bigint NOT NULL, "status" character varying NOT NULL, "decided_at" timestamptz NULL, "organization_id" character varying NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "deprovision_batches_organizations_organization" FOREIGN KEY ("organization_id") REFERENCES "organizations" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "deprovisionbatch_integration_id_created_at" to table: "deprovision_batches"
CREATE INDEX "deprovisionbatch_integration_id_created_at" ON "deprovision_batches" ("integration_id", "created_at");
-- create index "deprovisionbatch_job_id_integration_id" to table: "deprovision_batches"
CREATE UNIQUE INDEX "deprovisionbatch_job_id_integration_id" ON "deprovision_batches" ("job_id", "integration_id");

-- +goose Down
-- reverse: create index "deprovisionbatch_job_id_integration_id" to table: "deprovision_batches"
DROP INDEX "deprovisionbatch_job_id_integration_id";
-- reverse: create index "deprovisionbatch_integration_id_created_at" to table: "deprovision_batches"
DROP INDEX "deprovisionbatch_integration_id_created_at";
-- reverse: create "deprovision_batches" table
DROP TABLE "deprovision_batches";
-- reverse: modify "integrations" table
ALTER TABLE "integrations" DROP COLUMN "deprovision_guard_off", DROP COLUMN "deprovision_threshold";
