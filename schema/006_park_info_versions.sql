-- Step 6: park-info versions (docs/park-info.md): one counter per notified extension, +1 per park-info
-- notification sent to it, kept across restarts. Before this step the NOTIFYs carried the extension's target
-- version (bumped by every engine event, also those that send no park-info); the counters start there, so no
-- phone sees a version go back after the upgrade.
CREATE TABLE park_info_versions (
    domain   TEXT NOT NULL,
    ext      TEXT NOT NULL,
    version  INTEGER NOT NULL,
    PRIMARY KEY (domain, ext)
) WITHOUT ROWID;
INSERT INTO park_info_versions (domain, ext, version)
    SELECT domain, substr(target, 5), version FROM target_versions WHERE target LIKE 'ext:%';
