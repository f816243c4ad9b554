//! Structured documents: the grounding parser, the document model and its renderers.
