//! The one place SDK types meet `model`: `TryFrom` conversions at the edge.
