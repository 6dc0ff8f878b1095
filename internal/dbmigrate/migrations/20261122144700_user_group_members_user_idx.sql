-- Hand-written: ent cannot declare an index on an M2M join table. The primary
-- key (user_group_id, user_id) serves "members of a group"; this index serves
-- "groups of a user", which every membership-based sync decision reads.
-- +goose Up
CREATE INDEX "user_group_members_user_id" ON "user_group_members" ("user_id");

-- +goose Down
DROP INDEX "user_group_members_user_id";
