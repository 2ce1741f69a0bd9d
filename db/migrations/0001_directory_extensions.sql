-- pg_trgm backs the directory's Chinese text search (resources, service items); PGlite loads it as a contrib extension.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
