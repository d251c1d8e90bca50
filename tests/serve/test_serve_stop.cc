// `vkinfer serve`'s stop-string scanning (apps/serve_request.c): device-free, checked against a
// brute-force reference over whole texts fed in random pieces, and at the edges (a stop split
// over many calls, overlapping stops, unfinished UTF-8 held back).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

extern "C" {
#include "serve_internal.h"
}

namespace {

struct Stops {
    std::vector<std::string> s;
    std::vector<char *> p;
    explicit Stops(std::vector<std::string> v) : s(std::move(v))
    {
        for (auto &x : s) p.push_back(&x[0]);
    }
    char *const *ptr() { return p.empty() ? nullptr : p.data(); }
    uint32_t n() const { return (uint32_t)p.size(); }
};

// Feeds `text` in pieces of the given sizes (the last repeated), as a scheduler would, and
// returns what was handed out; *stop_at: where a stop was found (SIZE_MAX: none).
std::string stream(const std::string &text, Stops &stops, std::vector<size_t> pieces,
                   size_t *stop_at, std::vector<size_t> *safe_each = nullptr)
{
    size_t n = 0, sent = 0, at = SIZE_MAX;
    for (size_t i = 0; n < text.size(); i++) {
        size_t piece = pieces[std::min(i, pieces.size() - 1)];
        n = std::min(text.size(), n + piece);
        size_t safe = vki_serve_stop_scan(text.data(), n, sent, stops.ptr(), stops.n(), &at);
        EXPECT_GE(safe, sent);
        EXPECT_LE(safe, n);
        if (safe_each) safe_each->push_back(safe);
        sent = safe;
        if (at != SIZE_MAX) {
            EXPECT_EQ(at, safe);
            break;
        }
    }
    *stop_at = at;
    return text.substr(0, sent);
}

TEST(ServeStop, AStopSplitOverManyCallsIsNeverSeen)
{
    Stops stops({"<|END|>"});
    const std::string text = "hello <|END|> more";
    for (size_t piece : {1, 2, 3, 5, 7, 100}) {
        size_t at;
        std::vector<size_t> safe;
        EXPECT_EQ(stream(text, stops, {piece}, &at, &safe), "hello ") << piece;
        EXPECT_EQ(at, 6u) << piece;
    }
    // One byte at a time, the hand-out stops at the '<' and stays there.
    size_t at;
    std::vector<size_t> safe;
    stream(text, stops, {1}, &at, &safe);
    EXPECT_EQ(safe, (std::vector<size_t>{1, 2, 3, 4, 5, 6, 6, 6, 6, 6, 6, 6, 6}));
    // A partial match that then diverges is handed out at once.
    Stops s2({"<|END|>"});
    EXPECT_EQ(stream("a <|EN! b", s2, {1}, &at), "a <|EN! b");
    EXPECT_EQ(at, SIZE_MAX);
}

TEST(ServeStop, OverlappingEarliestAndAtTheStart)
{
    size_t at;
    {   // overlapping stops: "bc" completes inside a held-back "abcd"
        Stops s({"abcd", "bc"});
        std::vector<size_t> safe;
        EXPECT_EQ(stream("xabce", s, {1}, &at, &safe), "xa");
        EXPECT_EQ(at, 2u);
        EXPECT_EQ(safe, (std::vector<size_t>{1, 1, 1, 2}));
    }
    {   // a stop overlapping itself: "aab" in "aaab"
        Stops s({"aab"});
        std::vector<size_t> safe;
        EXPECT_EQ(stream("aaab", s, {1}, &at, &safe), "a");
        EXPECT_EQ(at, 1u);
        EXPECT_EQ(safe, (std::vector<size_t>{0, 0, 1, 1}));
    }
    {   // at the very start
        Stops s({"STOP"});
        EXPECT_EQ(stream("STOP and more", s, {13}, &at), "");
        EXPECT_EQ(at, 0u);
        EXPECT_EQ(stream("STOP and more", s, {1}, &at), "");
        EXPECT_EQ(at, 0u);
    }
    {   // several stops: the earliest occurrence wins, whatever the order of the list
        Stops s({"world", "lo", "hello"});
        EXPECT_EQ(stream("well, hello world", s, {17}, &at), "well, ");
        EXPECT_EQ(at, 6u);
        Stops t({"world", "lo"});
        EXPECT_EQ(stream("well, hello world", t, {17}, &at), "well, hel");
        EXPECT_EQ(at, 9u);
    }
    {   // one stop a prefix of another
        Stops s({"abc", "ab"});
        EXPECT_EQ(stream("xxabc", s, {5}, &at), "xx");
        EXPECT_EQ(at, 2u);
    }
    {   // a stop found when the whole text arrives in one piece, with the text after it
        Stops s({"\n\n"});
        EXPECT_EQ(stream("line\n\nnext\n\n", s, {100}, &at), "line");
        EXPECT_EQ(at, 4u);
    }
}

TEST(ServeStop, UnfinishedUtf8IsHeldBack)
{
    Stops none({});
    size_t at;
    {   // a 4-byte character byte by byte: nothing until it is whole
        std::vector<size_t> safe;
        EXPECT_EQ(stream("a\xf0\x9f\x98\x80z", none, {1}, &at, &safe), "a\xf0\x9f\x98\x80z");
        EXPECT_EQ(safe, (std::vector<size_t>{1, 1, 1, 1, 5, 6}));
        EXPECT_EQ(at, SIZE_MAX);
    }
    {   // 2 and 3 bytes
        std::vector<size_t> safe;
        stream("\xc3\xa9\xe2\x82\xac", none, {1}, &at, &safe);
        EXPECT_EQ(safe, (std::vector<size_t>{0, 2, 2, 2, 5}));
    }
    // Sequences that can never become a character are not held: the sanitiser replaces them.
    struct Case {
        std::string text;
        size_t want;
    } cases[] = {
        {"a\x80", 2}, {"a\xbf\xbf\xbf", 4}, {"a\xff", 2}, {"a\xc0", 2}, {"a\xc1", 2},
        {"a\xf5", 2}, {"a\xe0\x80", 3},   // overlong
        {"a\xed\xa0", 3},                  // a surrogate
        {"a\xf4\x90", 3},                  // past U+10FFFF
        {"a\xf0\x80", 3},                  // overlong
        {"a\xe0\xa0", 1}, {"a\xed\x9f", 1}, {"a\xf4\x8f\xbf", 1}, {"a\xf0\x90\x80", 1},
        {"a\xc3\x41", 3}, // a lead broken off by ASCII
    };
    for (const Case &c : cases)
        EXPECT_EQ(vki_serve_stop_scan(c.text.data(), c.text.size(), 0, nullptr, 0, &at), c.want)
            << testing::PrintToString(c.text);
    // A stop that begins with a multibyte character, split inside it.
    Stops s({"\xe2\x80\x94" "END"});
    std::string text = "x\xe2\x80\x94" "EN\xe2\x80\x94" "END";
    std::vector<size_t> safe;
    EXPECT_EQ(stream(text, s, {1}, &at, &safe), "x\xe2\x80\x94" "EN");
    EXPECT_EQ(at, 6u);
}

TEST(ServeStop, EdgeArguments)
{
    size_t at = 0;
    EXPECT_EQ(vki_serve_stop_scan(nullptr, 0, 0, nullptr, 0, &at), 0u);
    EXPECT_EQ(at, SIZE_MAX);
    EXPECT_EQ(vki_serve_stop_scan("abc", 3, 0, nullptr, 2, &at), 3u); // NULL stops: none
    EXPECT_EQ(vki_serve_stop_scan("abc", 3, 9, nullptr, 0, &at), 3u); // sent past the end
    EXPECT_EQ(vki_serve_stop_scan("abc", 3, 0, nullptr, 0, nullptr), 3u);
    Stops s({"", "c"}); // an empty stop matches nothing
    EXPECT_EQ(vki_serve_stop_scan("abc", 3, 0, s.ptr(), s.n(), &at), 2u);
    EXPECT_EQ(at, 2u);
}

// The longest tail of t[0, n) that is a proper prefix of a stop, by brute force.
size_t ref_stop_hold(const std::string &t, const std::vector<std::string> &stops)
{
    for (size_t len = t.size(); len > 0; len--)
        for (const std::string &s : stops)
            if (len < s.size() && s.compare(0, len, t, t.size() - len, len) == 0) return len;
    return 0;
}

// Every proper prefix of the UTF-8 form of every Unicode scalar value, encoded here by hand.
const std::set<std::string> &utf8_proper_prefixes()
{
    static std::set<std::string> set = [] {
        std::set<std::string> p;
        for (uint32_t cp = 0x80; cp <= 0x10FFFF; cp++) {
            if (cp >= 0xD800 && cp <= 0xDFFF) continue;
            std::string e;
            if (cp < 0x800) e = {char(0xC0 | cp >> 6), char(0x80 | (cp & 63))};
            else if (cp < 0x10000)
                e = {char(0xE0 | cp >> 12), char(0x80 | ((cp >> 6) & 63)), char(0x80 | (cp & 63))};
            else
                e = {char(0xF0 | cp >> 18), char(0x80 | ((cp >> 12) & 63)),
                     char(0x80 | ((cp >> 6) & 63)), char(0x80 | (cp & 63))};
            for (size_t k = 1; k < e.size(); k++) p.insert(e.substr(0, k));
        }
        return p;
    }();
    return set;
}

size_t ref_utf8_hold(const std::string &t, size_t safe)
{
    size_t hold = 0;
    for (size_t k = 1; k <= 3 && k <= safe; k++)
        if (utf8_proper_prefixes().count(t.substr(safe - k, k))) hold = k;
    return hold;
}

TEST(ServeStop, RandomTextsAgreeWithABruteForceReference)
{
    // Text over a small alphabet (so stops occur often) with multibyte and broken characters.
    const std::vector<std::string> alphabet = {"a", "b", "c", " ", "\xc3\xa9", "\xe2\x82\xac",
                                               "\xf0\x9f\x98\x80", "\xff", "\xe2\x82", "\x80",
                                               "\xed\xa0", "\xf4\x90", "\xf0\x9f"};
    uint64_t x = 12345;
    auto rnd = [&x](uint32_t n) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        return (uint32_t)((x >> 33) % n);
    };
    int found = 0, held = 0;
    for (int trial = 0; trial < 3000; trial++) {
        std::string text;
        for (uint32_t i = 0, len = 1 + rnd(40); i < len; i++) text += alphabet[rnd(alphabet.size())];
        std::vector<std::string> stops;
        for (uint32_t i = 0, k = rnd(5); i < k; i++) {
            std::string s;
            for (uint32_t j = 0, len = 1 + rnd(4); j < len; j++) s += alphabet[rnd(alphabet.size())];
            stops.push_back(s);
        }
        Stops st(stops);
        size_t n = 0, sent = 0;
        while (n < text.size()) {
            n = std::min(text.size(), n + 1 + rnd(6));
            std::string t = text.substr(0, n);
            // The reference: the earliest complete occurrence anywhere in the text so far.
            size_t want_at = SIZE_MAX;
            for (const std::string &s : stops) want_at = std::min(want_at, t.find(s));
            size_t at;
            size_t safe = vki_serve_stop_scan(t.data(), n, sent, st.ptr(), st.n(), &at);
            ASSERT_EQ(at, want_at) << "trial " << trial;
            if (at != SIZE_MAX) {
                ASSERT_EQ(safe, at);
                found++;
                break;
            }
            size_t want = n - ref_stop_hold(t, stops);
            want -= ref_utf8_hold(t, want);
            ASSERT_GE(want, sent) << "trial " << trial; // what was handed out stays valid
            ASSERT_EQ(safe, want) << "trial " << trial << " n " << n;
            held += safe < n;
            sent = safe;
        }
    }
    EXPECT_GT(found, 300); // the random cases exercise both outcomes
    EXPECT_GT(held, 300);
}

}  // namespace
