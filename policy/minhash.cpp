#include "policy/minhash.hpp"

#include <xxhash.h>

namespace floodgate::policy {

namespace {

// splitmix64's finaliser: a bijection of 64-bit values whose output bits
// each depend on all input bits, so the minimum under each seed behaves like
// the minimum under an independent random permutation.
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Fixed forever: changing them changes every band key, so every counter in
// Redis would restart from zero.
constexpr std::uint64_t k_seed_step = 0x9e3779b97f4a7c15ULL;
constexpr std::uint64_t k_band_seed = 0x666c6f6f64676174ULL;  // "floodgat"

}  // namespace

MinHashSketch::MinHashSketch() { m_minima.fill(~std::uint64_t{0}); }

void MinHashSketch::add_token(std::string_view token) {
  m_recent[m_tokens % k_shingle_tokens] = XXH3_64bits(token.data(), token.size());
  ++m_tokens;
  if (m_tokens < k_shingle_tokens) return;
  // The shingle in token order, whatever slot of the ring holds the oldest.
  std::array<std::uint64_t, k_shingle_tokens> shingle;
  for (std::size_t i = 0; i < k_shingle_tokens; ++i) {
    shingle[i] = m_recent[(m_tokens + i) % k_shingle_tokens];
  }
  add_shingle(XXH3_64bits(shingle.data(), sizeof shingle));
}

void MinHashSketch::add_shingle(std::uint64_t shingle) {
  for (std::size_t i = 0; i < k_hashes; ++i) {
    const std::uint64_t value = mix(shingle + (i + 1) * k_seed_step);
    if (value < m_minima[i]) m_minima[i] = value;
  }
}

std::vector<std::uint64_t> MinHashSketch::band_keys() const {
  std::vector<std::uint64_t> keys;
  if (!has_signature()) return keys;
  keys.reserve(k_bands);
  for (std::size_t band = 0; band < k_bands; ++band) {
    keys.push_back(
        XXH3_64bits_withSeed(&m_minima[band * k_rows], k_rows * sizeof(std::uint64_t), k_band_seed + band));
  }
  return keys;
}

}  // namespace floodgate::policy
