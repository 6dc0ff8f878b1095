-- +goose Up
-- modify "integrations" table
ALTER TABLE "integrations" ADD COLUMN "write_budget_size" bigint NULL, ADD COLUMN "write_budget_refill_per_second" double precision NULL;

-- +goose Down
-- reverse: modify "integrations" table
ALTER TABLE "integrations" DROP COLUMN "write_budget_refill_per_second", DROP COLUMN "write_budget_size";
