//! DNS rcodes and unanswered queries per resolver, at tcx (being written).
