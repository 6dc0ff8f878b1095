-- +goose Up
-- modify "jobs" table
ALTER TABLE "jobs" ADD COLUMN "retry_of_id" character varying NULL;

-- +goose Down
-- reverse: modify "jobs" table
ALTER TABLE "jobs" DROP COLUMN "retry_of_id";
