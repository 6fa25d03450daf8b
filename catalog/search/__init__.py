"""Near pairs by signature kind: Hamming search of hash codes, HNSW indexes of vectors, the pairs
kept at indexing time, their verification, and the nearest images of a file."""
