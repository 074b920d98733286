-- The secret that keys shared series ids (SipHash-2-4 of a series' family and label values):
-- made once, here, from PostgreSQL's strong random source, and read by every replica at start.
-- Without it, anyone who can post labels could choose values whose ids collide with another
-- series' and make every commit that carries them fail. Series created before this keep the
-- ids they have; replicas find them by name in the catalog.
CREATE TABLE series_id_key (
    id integer PRIMARY KEY CHECK (id = 1),
    key bytea NOT NULL CHECK (octet_length(key) = 16)
);
INSERT INTO series_id_key (id, key) VALUES (1, uuid_send(gen_random_uuid()));
