"""Run records and what is made of them: atomic writes, reading and collecting records, a failed job's record,
seed statistics, tables, a study README's generated sections, the factorial design's effects. May import config/,
model/, data/ and roadmap's top level."""

from roadmap.exports import hand_on

__all__, __getattr__ = hand_on(__name__, {
    "effects": ("CHAIN", "HIGHER", "MAIN", "Analysis", "Effect", "analyse", "did_not_train"),
    "failures": ("FailedJobs", "Refusal", "write_failure"),
    "provenance": ("provenance_markdown", "study_records", "table_section", "update_readme"),
    "records": ("RECORDS", "atomic_write", "atomic_write_text", "collect", "load_records"),
    "stats": ("SHARED", "aggregate", "ci95", "compare", "compare_folder", "mean_sd"),
    "tables": ("comparison_markdown", "plus_minus", "to_csv", "to_markdown", "write_tables"),
})
