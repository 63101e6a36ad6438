-- The first-owner claim of each package name: two first publishes of a new name race for
-- this row and exactly one wins (its publisher becomes the owner); the row outlives the
-- package, as its owners do.
CREATE TABLE package_claims (
    registry TEXT NOT NULL,
    package  TEXT NOT NULL,
    PRIMARY KEY (registry, package)
);
