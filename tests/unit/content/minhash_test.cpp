// MinHashSketch: same shingles, same keys; similar texts share a band key,
// unrelated ones do not; short texts have no signature.
#include "policy/minhash.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace floodgate::policy {
namespace {

std::vector<std::string> words(std::size_t count, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < count; ++i) out.push_back("w" + std::to_string(rng() % 5000));
  return out;
}

MinHashSketch sketch_of(const std::vector<std::string>& tokens) {
  MinHashSketch sketch;
  for (const auto& token : tokens) sketch.add_token(token);
  return sketch;
}

bool share_a_band(const MinHashSketch& a, const MinHashSketch& b) {
  const auto ka = a.band_keys();
  const auto kb = b.band_keys();
  for (std::size_t i = 0; i < ka.size() && i < kb.size(); ++i) {
    if (ka[i] == kb[i]) return true;
  }
  return false;
}

TEST(MinHash, SameTokensGiveSameBandKeys) {
  const auto text = words(200, 1);
  const auto keys = sketch_of(text).band_keys();
  ASSERT_EQ(keys.size(), MinHashSketch::k_bands);
  EXPECT_EQ(sketch_of(text).band_keys(), keys);
}

TEST(MinHash, BandKeysDifferBetweenBands) {
  // Equal rows in two bands must not make equal keys (the band index is in
  // the key): a text of one repeated shingle has all minima equal.
  const auto keys = sketch_of(std::vector<std::string>(50, "same")).band_keys();
  for (std::size_t i = 1; i < keys.size(); ++i) EXPECT_NE(keys[i], keys[0]) << "band " << i;
}

TEST(MinHash, TextsBelowMinTokensHaveNoSignature) {
  const auto short_text = words(MinHashSketch::k_min_tokens - 1, 2);
  EXPECT_FALSE(sketch_of(short_text).has_signature());
  EXPECT_TRUE(sketch_of(short_text).band_keys().empty());
  EXPECT_TRUE(sketch_of(words(MinHashSketch::k_min_tokens, 2)).has_signature());
}

TEST(MinHash, AFewInsertedWordsKeepABandInCommonMostOfTheTime) {
  // 300 tokens with 5 random words inserted: Jaccard ~0.9, P(match) ~0.999.
  int matched = 0;
  constexpr int k_trials = 200;
  for (int trial = 0; trial < k_trials; ++trial) {
    const auto original = words(300, 100 + trial);
    auto varied = original;
    std::mt19937 rng(trial);
    for (int i = 0; i < 5; ++i) {
      varied.insert(varied.begin() + static_cast<long>(rng() % varied.size()),
                    "busted" + std::to_string(rng()));
    }
    matched += share_a_band(sketch_of(original), sketch_of(varied));
  }
  EXPECT_GE(matched, k_trials * 97 / 100) << "got " << matched << " of " << k_trials;
}

TEST(MinHash, UnrelatedTextsShareNoBand) {
  int matched = 0;
  for (std::uint32_t i = 0; i < 100; ++i) {
    matched += share_a_band(sketch_of(words(200, 1000 + i)), sketch_of(words(200, 2000 + i)));
  }
  EXPECT_EQ(matched, 0);
}

TEST(MinHash, SignatureEstimatesJaccardSimilarity) {
  // Half the text shared: the fraction of equal minima estimates the
  // Jaccard similarity of the shingle sets (~1/3 here) within noise.
  auto a = words(400, 7);
  auto b = std::vector<std::string>(a.begin(), a.begin() + 200);
  const auto tail = words(200, 8);
  b.insert(b.end(), tail.begin(), tail.end());
  const auto sa = sketch_of(a).signature();
  const auto sb = sketch_of(b).signature();
  std::size_t equal = 0;
  for (std::size_t i = 0; i < sa.size(); ++i) equal += sa[i] == sb[i];
  const double estimate = static_cast<double>(equal) / static_cast<double>(sa.size());
  EXPECT_GT(estimate, 0.1) << "got " << estimate << ", want about 0.33";
  EXPECT_LT(estimate, 0.6) << "got " << estimate << ", want about 0.33";
}

}  // namespace
}  // namespace floodgate::policy
