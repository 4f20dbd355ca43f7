// MinHashSketch: the MinHash signature of a token stream's word shingles and
// its LSH band keys, so that texts sharing most of their shingles share a
// band key and unrelated texts almost never do.
//
// PARAMETERS (chosen on the SpamAssassin corpus, see
// tests/unit/content/test_near_duplicates.py):
//   - shingles of k_shingle_tokens = 3 consecutive tokens (policy/text_tokens);
//   - k_bands * k_rows = 8 * 5 = 40 MinHash values: one XXH3 hash per
//     shingle, permuted 40 ways by a 64-bit mixer with 40 fixed seeds;
//   - band key i = XXH3 of (i, rows 5i..5i+4), seeded, so equal rows in
//     different bands give different keys.
// Two texts whose shingle sets have Jaccard similarity s share at least
// one band key with probability P = 1 - (1 - s^5)^8:
//     s    = 0.1      0.3      0.5     0.8     0.9
//     P    = 0.00008  0.019    0.22    0.96    0.9992
// So a hash-busted copy (1-10 random words in a few hundred tokens, s ~ 0.8
// to 0.95) matches its original 96-99.9% of the time, and two unrelated
// messages that share boilerplate (s ~ 0.1) one time in 12,500. Measured:
// 96.9% of 2,687 spam variants match their original (short spam with 10
// inserted words is what misses: s falls below 0.5), and 0.0075% of the
// 8.45 million pairs of 4,112 distinct ham messages match, nearly all of
// them quoted replies and newsletters from one template. Shingles of 2
// tokens raise recall to 98.6% but ham matches to 0.019%; 4 rows, 97.9%
// and 0.013%.
// Each band key is one Redis counter per content rule, so k_bands is kept
// small; "copies of this content" is the largest of the band counters.
// That count lags when every copy is mutated independently: a band counts
// only the copies whose rows there are identical. Measured through Postfix
// (tests/integration/postfix/test_near_duplicates.py, 60 copies of a ~90
// word text, 3 recipients each, threshold 100 recipients): greeting and link
// changed, stopped at the 101st recipient; plus one random word per copy,
// the 123rd; up to 3 words, the 168th; up to 5 or 10, not within 180.
//
// LIMITS: below k_min_tokens tokens a text has too few shingles for the
// estimate to mean anything (one changed word moves a large fraction of
// them): has_signature() is false and callers fall back to an exact hash.
// State is fixed: the last k_shingle_tokens - 1 token hashes and the 40
// minima.
//
// Not thread-safe; one per message.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace floodgate::policy {

class MinHashSketch {
 public:
  static constexpr std::size_t k_shingle_tokens = 3;
  static constexpr std::size_t k_bands = 8;
  static constexpr std::size_t k_rows = 5;
  static constexpr std::size_t k_hashes = k_bands * k_rows;
  static constexpr std::size_t k_min_tokens = 16;

  MinHashSketch();

  void add_token(std::string_view token);

  std::size_t tokens() const { return m_tokens; }
  bool has_signature() const { return m_tokens >= k_min_tokens; }
  // The k_hashes minima; meaningful only with has_signature().
  const std::array<std::uint64_t, k_hashes>& signature() const { return m_minima; }
  // k_bands keys; empty without has_signature().
  std::vector<std::uint64_t> band_keys() const;

 private:
  void add_shingle(std::uint64_t shingle);

  std::array<std::uint64_t, k_hashes> m_minima;
  std::array<std::uint64_t, k_shingle_tokens> m_recent{};  // ring of token hashes
  std::size_t m_tokens = 0;
};

}  // namespace floodgate::policy
