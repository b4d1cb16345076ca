-- The row of a batch file: startup reconciliation looks up files found in the
-- export directory that may have no row (saved just before a crash).
CREATE INDEX exports_file ON exports (batch_file);
