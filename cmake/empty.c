/* empty.c: stands in for a folder with no sources yet. */
typedef int msw_empty_translation_unit;
