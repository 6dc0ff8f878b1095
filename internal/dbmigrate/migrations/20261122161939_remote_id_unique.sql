-- +goose Up
-- create index "remote_links_integration_remote_id_key" to table: "remote_links"
CREATE UNIQUE INDEX "remote_links_integration_remote_id_key" ON "remote_links" ("integration_id", "remote_id") WHERE ((remote_id IS NOT NULL) AND ((remote_id)::text <> ''::text));

-- +goose Down
-- reverse: create index "remote_links_integration_remote_id_key" to table: "remote_links"
DROP INDEX "remote_links_integration_remote_id_key";
