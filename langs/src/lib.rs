//! docseek-langs: script and language detection over ~100 languages, and the routing of
//! language-specific post-processing (direction, line joining, normalisation).
