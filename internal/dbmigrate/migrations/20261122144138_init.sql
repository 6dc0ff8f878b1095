-- +goose Up
-- create "organizations" table
CREATE TABLE "organizations" ("id" character varying NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "name" character varying NOT NULL, "default_import_state" character varying NOT NULL DEFAULT 'STAGED', "user_limit" bigint NULL, "password_takeover" boolean NOT NULL DEFAULT false, PRIMARY KEY ("id"));
-- create index "organizations_name_key" to table: "organizations"
CREATE UNIQUE INDEX "organizations_name_key" ON "organizations" ("name");
-- create "api_keys" table
CREATE TABLE "api_keys" ("id" character varying NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "name" character varying NOT NULL, "role" character varying NOT NULL, "key_hash" bytea NOT NULL, "key_prefix" character varying NOT NULL, "last_used_at" timestamptz NULL, "organization_id" character varying NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "api_keys_organizations_organization" FOREIGN KEY ("organization_id") REFERENCES "organizations" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "api_keys_key_hash_key" to table: "api_keys"
CREATE UNIQUE INDEX "api_keys_key_hash_key" ON "api_keys" ("key_hash");
-- create index "apikey_organization_id" to table: "api_keys"
CREATE INDEX "apikey_organization_id" ON "api_keys" ("organization_id");
-- create "user_groups" table
CREATE TABLE "user_groups" ("id" character varying NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "name" character varying NOT NULL, "name_folded" character varying NOT NULL, "description" character varying NULL, "organization_id" character varying NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "user_groups_organizations_organization" FOREIGN KEY ("organization_id") REFERENCES "organizations" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "user_groups_org_name_key" to table: "user_groups"
CREATE UNIQUE INDEX "user_groups_org_name_key" ON "user_groups" ("organization_id", "name_folded");
-- create "users" table
CREATE TABLE "users" ("id" character varying NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "username" character varying NOT NULL, "username_folded" character varying NOT NULL, "email" character varying NOT NULL, "email_folded" character varying NOT NULL, "alternate_email" character varying NULL, "first_name" character varying NULL, "last_name" character varying NULL, "display_name" character varying NULL, "job_title" character varying NULL, "department" character varying NULL, "company_name" character varying NULL, "employee_id" character varying NULL, "employee_type" character varying NULL, "cost_center" character varying NULL, "business_phone" character varying NULL, "mobile_phone" character varying NULL, "office_location" character varying NULL, "street_address" character varying NULL, "city" character varying NULL, "address_state" character varying NULL, "postal_code" character varying NULL, "country" character varying NULL, "usage_location" character varying NULL, "state" character varying NOT NULL DEFAULT 'STAGED', "password_hash" character varying NULL, "password_set_at" timestamptz NULL, "password_expires_at" timestamptz NULL, "failed_logins" bigint NOT NULL DEFAULT 0, "locked_until" timestamptz NULL, "organization_id" character varying NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "users_organizations_organization" FOREIGN KEY ("organization_id") REFERENCES "organizations" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "users_org_email_key" to table: "users"
CREATE UNIQUE INDEX "users_org_email_key" ON "users" ("organization_id", "email_folded");
-- create index "users_org_username_key" to table: "users"
CREATE UNIQUE INDEX "users_org_username_key" ON "users" ("organization_id", "username_folded");
-- create "user_group_members" table
CREATE TABLE "user_group_members" ("user_group_id" character varying NOT NULL, "user_id" character varying NOT NULL, PRIMARY KEY ("user_group_id", "user_id"), CONSTRAINT "user_group_members_user_group_id" FOREIGN KEY ("user_group_id") REFERENCES "user_groups" ("id") ON UPDATE NO ACTION ON DELETE CASCADE, CONSTRAINT "user_group_members_user_id" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON UPDATE NO ACTION ON DELETE CASCADE);

-- +goose Down
-- reverse: create "user_group_members" table
DROP TABLE "user_group_members";
-- reverse: create index "users_org_username_key" to table: "users"
DROP INDEX "users_org_username_key";
-- reverse: create index "users_org_email_key" to table: "users"
DROP INDEX "users_org_email_key";
-- reverse: create "users" table
DROP TABLE "users";
-- reverse: create index "user_groups_org_name_key" to table: "user_groups"
DROP INDEX "user_groups_org_name_key";
-- reverse: create "user_groups" table
DROP TABLE "user_groups";
-- reverse: create index "apikey_organization_id" to table: "api_keys"
DROP INDEX "apikey_organization_id";
-- reverse: create index "api_keys_key_hash_key" to table: "api_keys"
DROP INDEX "api_keys_key_hash_key";
-- reverse: create "api_keys" table
DROP TABLE "api_keys";
-- reverse: create index "organizations_name_key" to table: "organizations"
DROP INDEX "organizations_name_key";
-- reverse: create "organizations" table
DROP TABLE "organizations";
