"""Operating the books: backups (`backup`), restores (`restore`) and what they share (`archive`)."""
