/* test_vote.c — answer extraction on realistic model outputs, normalisation equivalence classes,
 * hostile text (huge, unbalanced, invalid UTF-8), regex and callback extraction, the confidence
 * tracker against a brute-force recomputation, the vote tally and its early-stop rule, and the
 * pruning percentile against hand-computed values. */
#include "test_util.h"
#include "utf8.h"
#include "vote.h"

#include <math.h>
#include <string.h>
#include <time.h>

/* Extracts with kind and returns the answer (caller frees), asserting REASON_OK. */
static char *extract(int32_t kind, const char *regex, const char *text) {
    char *out = (char *)1;
    reason_status st = answer_extract(kind, regex, NULL, text, strlen(text), &out);
    ck_assert_msg(st == REASON_OK, "extract(%d, \"%s\"): %s", kind, text, reason_last_error());
    return out;
}

static void expect_extract(int32_t kind, const char *regex, const char *text, const char *want) {
    char *got = extract(kind, regex, text);
    if (want == NULL)
        ck_assert_msg(got == NULL, "kind %d on \"%s\": want no answer, got \"%s\"", kind, text,
                      got);
    else
        ck_assert_msg(got && strcmp(got, want) == 0, "kind %d on \"%s\": want \"%s\", got \"%s\"",
                      kind, text, want, got ? got : "(NULL)");
    free(got);
}

static char *norm(const char *s) {
    char *out = answer_normalize(s, strlen(s));
    ck_assert_ptr_nonnull(out);
    return out;
}

static void expect_norm(const char *s, const char *want) {
    char *got = norm(s);
    ck_assert_msg(strcmp(got, want) == 0, "normalize(\"%s\"): want \"%s\", got \"%s\"", s, want,
                  got);
    free(got);
}

/* ---------------------------------------------------------------------------------------------- */
/* Extraction on realistic answers */

typedef struct {
    int32_t kind;
    const char *text;
    const char *want; /* NULL: no answer */
} extract_case;

static const extract_case extract_cases[] = {
    /* R1 / Qwen3 style */
    {REASON_EXTRACT_BOXED,
     "So the total is 18 dollars.\n\n**Final Answer**\nThe final answer is $\\boxed{18}$.", "18"},
    {REASON_EXTRACT_BOXED, "Thus $x = \\boxed{\\frac{1}{2}}$.", "1/2"},
    {REASON_EXTRACT_BOXED, "\\boxed{\\dfrac{6}{8}}", "3/4"},
    {REASON_EXTRACT_BOXED, "First guess \\boxed{12}, but wait, recheck: \\boxed{14}.", "14"},
    {REASON_EXTRACT_BOXED, "\\boxed{\\text{(B)}}", "(B)"},
    {REASON_EXTRACT_BOXED, "\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"},
    {REASON_EXTRACT_BOXED, "\\fbox{7}", "7"},
    {REASON_EXTRACT_BOXED, "\\boxed {  -3 }", "-3"},
    {REASON_EXTRACT_BOXED, "\\boxed{\\boxed{5}}", "5"},
    {REASON_EXTRACT_BOXED, "\\boxed{2} then cut off: \\boxed{\\frac{3}{", "2"},
    {REASON_EXTRACT_BOXED, "\\boxed{x^{2}+1}", "x^{2}+1"},
    {REASON_EXTRACT_BOXED, "\\boxed{1,234}", "1234"},
    {REASON_EXTRACT_BOXED, "\\boxed{}", NULL},
    {REASON_EXTRACT_BOXED, "no box here, the answer is 5", NULL},
    {REASON_EXTRACT_BOXED, "\\boxedfoo{3}", NULL},
    {REASON_EXTRACT_BOXED, "", NULL},
    /* GSM8K style and plain numbers */
    {REASON_EXTRACT_LAST_NUMBER, "Natalia sold 48/2 = 24 clips in May.\n#### 72", "72"},
    {REASON_EXTRACT_LAST_NUMBER, "The answer is 1,234.", "1234"},
    {REASON_EXTRACT_LAST_NUMBER, "It is 1,234,567 in total", "1234567"},
    {REASON_EXTRACT_LAST_NUMBER, "The temperature is -5 degrees", "-5"},
    {REASON_EXTRACT_LAST_NUMBER, "Pages 3-4", "4"},
    {REASON_EXTRACT_LAST_NUMBER, "It costs 3.50 dollars.", "3.5"},
    {REASON_EXTRACT_LAST_NUMBER, "about .5 of it", "0.5"},
    {REASON_EXTRACT_LAST_NUMBER, "So it is 5cm long, not H2O or x2", "5"},
    {REASON_EXTRACT_LAST_NUMBER, "version v1.5 of x2", NULL},
    {REASON_EXTRACT_LAST_NUMBER, "the ratio is 6/8", "3/4"},
    {REASON_EXTRACT_LAST_NUMBER, "groups 1,2345", "2345"},
    {REASON_EXTRACT_LAST_NUMBER, "007 agents", "7"},
    {REASON_EXTRACT_LAST_NUMBER, "a loss of \xE2\x88\x92" "12 points", "-12"},
    {REASON_EXTRACT_LAST_NUMBER, "no digits at all", NULL},
    /* final line */
    {REASON_EXTRACT_FINAL_LINE, "Reasoning...\nParis\n\n  \n", "Paris"},
    {REASON_EXTRACT_FINAL_LINE, "  The   Eiffel\tTower.  ", "The Eiffel Tower"},
    {REASON_EXTRACT_FINAL_LINE, "\n \n\t\n", NULL},
    {REASON_EXTRACT_FINAL_LINE, "one line", "one line"},
    /* auto */
    {REASON_EXTRACT_AUTO, "Lots of 3 and 4.\nThe answer is $\\boxed{12}$ and 99", "12"},
    {REASON_EXTRACT_AUTO, "We get 3 then 4. Therefore, the answer is 1,234.", "1234"},
    {REASON_EXTRACT_AUTO, "So 2 + 2 = 4.\nAnswer: B", "B"},
    {REASON_EXTRACT_AUTO, "**Final Answer:** 42\n\nHope this helps 7", "42"},
    {REASON_EXTRACT_AUTO, "The answer is **42**.", "42"},
    {REASON_EXTRACT_AUTO, "The answer is 5 apples. Then 9 more words 10", "5"},
    {REASON_EXTRACT_AUTO, "The answer is: $\\frac{6}{8}$. Indeed 3", "3/4"},
    {REASON_EXTRACT_AUTO, "the final answer is 2 + 3i", "2 + 3i"},
    {REASON_EXTRACT_AUTO, "The answer is 50%.", "50"},
    {REASON_EXTRACT_AUTO, "The answer is $18.", "18"},
    {REASON_EXTRACT_AUTO, "The answer is the Eiffel Tower. It is tall.", "the Eiffel Tower"},
    {REASON_EXTRACT_AUTO, "first 3, then 4, finally 17 apples", "17"},
    {REASON_EXTRACT_AUTO, "Paris", "Paris"},
    {REASON_EXTRACT_AUTO, "The answers are wrong\nso we get 8", "8"},
    {REASON_EXTRACT_AUTO, "", NULL},
};

START_TEST(test_extract_table) {
    for (size_t i = 0; i < sizeof extract_cases / sizeof extract_cases[0]; i++)
        expect_extract(extract_cases[i].kind, NULL, extract_cases[i].text, extract_cases[i].want);
}
END_TEST

START_TEST(test_extract_args) {
    char *out = (char *)1;
    ck_assert_int_eq(answer_extract(REASON_EXTRACT_BOXED, NULL, NULL, "x", 1, NULL),
                     REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(answer_extract(REASON_EXTRACT_BOXED, NULL, NULL, NULL, 3, &out),
                     REASON_ERR_INVALID_ARG);
    ck_assert_ptr_null(out);
    out = (char *)1;
    ck_assert_int_eq(answer_extract(99, NULL, NULL, "x", 1, &out), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(answer_extract(-1, NULL, NULL, "x", 1, &out), REASON_ERR_INVALID_ARG);
    /* NULL text with len 0 is an empty text */
    ck_assert_int_eq(answer_extract(REASON_EXTRACT_AUTO, NULL, NULL, NULL, 0, &out), REASON_OK);
    ck_assert_ptr_null(out);
    /* len, not the NUL, bounds the text */
    ck_assert_int_eq(answer_extract(REASON_EXTRACT_LAST_NUMBER, NULL, NULL, "12 34", 2, &out),
                     REASON_OK);
    ck_assert_str_eq(out, "12");
    free(out);
    /* callback kind without a callback */
    ck_assert_int_eq(answer_extract(REASON_EXTRACT_CALLBACK, NULL, NULL, "x", 1, &out),
                     REASON_ERR_INVALID_ARG);
    reason_callbacks none = {0};
    ck_assert_int_eq(answer_extract(REASON_EXTRACT_CALLBACK, NULL, &none, "x", 1, &out),
                     REASON_ERR_INVALID_ARG);
}
END_TEST

/* ---------------------------------------------------------------------------------------------- */
/* Regex */

START_TEST(test_extract_regex) {
    /* last match, first capture group */
    expect_extract(REASON_EXTRACT_REGEX, "ANSWER: ([A-D])", "ANSWER: A\nno, ANSWER: C\n", "C");
    /* no group: whole match */
    expect_extract(REASON_EXTRACT_REGEX, "[0-9]+", "a 1 b 22 c 333 d", "333");
    /* first group that took part */
    expect_extract(REASON_EXTRACT_REGEX, "x=(\\d+)|y=(\\d+)", "x=1 y=2", "2");
    /* normalised afterwards */
    expect_extract(REASON_EXTRACT_REGEX, "#### (.*)", "#### 1,000.50", "1000.5");
    /* Unicode classes (UCP): \w matches é, \d matches Arabic-Indic digits */
    expect_extract(REASON_EXTRACT_REGEX, "city: (\\w+)", "city: Orléans", "Orléans");
    expect_extract(REASON_EXTRACT_REGEX, "(\\d+)$", "n = \xD9\xA3", "\xD9\xA3");
    /* no match */
    expect_extract(REASON_EXTRACT_REGEX, "ANSWER: ([A-D])", "nothing", NULL);
    /* patterns that match empty strings terminate and find the last non-empty match */
    expect_extract(REASON_EXTRACT_REGEX, "\\d*", "ab 12 cd 345 ef", "345");
    expect_extract(REASON_EXTRACT_REGEX, "(?=x)|x+", "axxbxc", "x");
    expect_extract(REASON_EXTRACT_REGEX, "", "abc", NULL); /* only empty matches: "" is none */
    /* invalid UTF-8 in the text does not make PCRE2 fail */
    expect_extract(REASON_EXTRACT_REGEX, "= (\\d+)", "bad \xFF\xFE bytes = 42 \xC3", "42");
    expect_extract(REASON_EXTRACT_REGEX, "bytes (.)", "bytes \xFF", "\xEF\xBF\xBD");
}
END_TEST

START_TEST(test_regex_errors) {
    char *out = (char *)1;
    reason_status st = answer_extract(REASON_EXTRACT_REGEX, "(abc", NULL, "abc", 3, &out);
    ck_assert_int_eq(st, REASON_ERR_INVALID_ARG);
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(reason_last_error(), "offset 4") != NULL, "%s", reason_last_error());
    /* checked even when the text is empty */
    st = answer_extract(REASON_EXTRACT_REGEX, "a[", NULL, "", 0, &out);
    ck_assert_int_eq(st, REASON_ERR_INVALID_ARG);
    ck_assert_msg(strstr(reason_last_error(), "offset 2") != NULL, "%s", reason_last_error());
    st = answer_extract(REASON_EXTRACT_REGEX, NULL, NULL, "abc", 3, &out);
    ck_assert_int_eq(st, REASON_ERR_INVALID_ARG);
    /* invalid UTF-8 in the pattern */
    ck_assert_int_eq(answer_regex_check("a\xFF"), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(answer_regex_check("(?<n>x)\\k<m>"), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(answer_regex_check(NULL), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(answer_regex_check("ANSWER: (\\w+)"), REASON_OK);
    /* catastrophic backtracking hits PCRE2's match limit and reports it instead of hanging */
    char text[64];
    memset(text, 'a', 40);
    strcpy(text + 40, "!");
    st = answer_extract(REASON_EXTRACT_REGEX, "(a+)+$", NULL, text, strlen(text), &out);
    ck_assert_int_eq(st, REASON_ERR_INVALID_ARG);
    ck_assert_msg(strstr(reason_last_error(), "match") != NULL, "%s", reason_last_error());
}
END_TEST

/* ---------------------------------------------------------------------------------------------- */
/* Callback */

typedef struct {
    const char *answer;
    int calls;
    size_t last_capacity;
    bool lie_large; /* first call claims more than fits */
} cb_state;

static size_t cb_extract(void *user, const char *text, size_t len, char *out, size_t capacity) {
    cb_state *st = user;
    st->calls++;
    st->last_capacity = capacity;
    (void)text;
    (void)len;
    size_t n = strlen(st->answer);
    if (st->lie_large && st->calls == 1) return capacity + 10;
    if (n + 1 > capacity) return n + 1;
    memcpy(out, st->answer, n + 1);
    return n;
}

START_TEST(test_extract_callback) {
    cb_state st = {.answer = " $\\frac{10}{4}$ "};
    reason_callbacks cb = {.user = &st, .extract = cb_extract};
    char *out = NULL;
    ck_assert_int_eq(answer_extract(REASON_EXTRACT_CALLBACK, NULL, &cb, "text", 4, &out),
                     REASON_OK);
    ck_assert_str_eq(out, "5/2");
    ck_assert_int_eq(st.calls, 1);
    ck_assert_uint_ge(st.last_capacity, 260);
    free(out);

    st = (cb_state){.answer = ""};
    ck_assert_int_eq(answer_extract(REASON_EXTRACT_CALLBACK, NULL, &cb, "text", 4, &out),
                     REASON_OK);
    ck_assert_ptr_null(out);

    /* an answer longer than the first buffer: asked again with the room it named */
    static char big[2000];
    memset(big, 'z', sizeof big - 1);
    st = (cb_state){.answer = big};
    ck_assert_int_eq(answer_extract(REASON_EXTRACT_CALLBACK, NULL, &cb, "t", 1, &out), REASON_OK);
    ck_assert_int_eq(st.calls, 2);
    ck_assert_uint_eq(strlen(out), sizeof big - 1);
    free(out);

    st = (cb_state){.answer = "7", .lie_large = true};
    ck_assert_int_eq(answer_extract(REASON_EXTRACT_CALLBACK, NULL, &cb, "t", 1, &out), REASON_OK);
    ck_assert_str_eq(out, "7");
    free(out);
}
END_TEST

/* ---------------------------------------------------------------------------------------------- */
/* Normalisation */

START_TEST(test_normalize_rules) {
    expect_norm("  3.50  ", "3.5");
    expect_norm("007", "7");
    expect_norm("-0", "0");
    expect_norm("-0.000", "0");
    expect_norm("+5", "5");
    expect_norm("1,234", "1234");
    expect_norm("-1,234,567.890", "-1234567.89");
    expect_norm("1,2345", "1,2345"); /* not thousands groups: text */
    expect_norm("12,34", "12,34");
    expect_norm(".5", "0.5");
    expect_norm("-.5", "-0.5");
    expect_norm("5.", "5");
    expect_norm("10.0", "10");
    expect_norm("100", "100");
    expect_norm("6/8", "3/4");
    expect_norm("4/2", "2");
    expect_norm("-6/8", "-3/4");
    expect_norm("6/-8", "-3/4");
    expect_norm("-6/-8", "3/4");
    expect_norm("0/5", "0");
    expect_norm("5/0", "5/0");
    expect_norm("6 / 8", "3/4");
    expect_norm("\\frac{6}{8}", "3/4");
    expect_norm("\\frac12", "1/2");
    expect_norm("\\frac{ -2 }{4}", "-1/2");
    expect_norm("-\\frac{2}{4}", "-1/2");
    expect_norm("\\tfrac{9}{3}", "3");
    expect_norm("\\frac{\\pi}{2}", "\\frac{\\pi}{2}");
    expect_norm("\\dfrac{\\pi}{2}", "\\frac{\\pi}{2}");
    expect_norm("x = \\frac{6}{8}", "x = 3/4");
    expect_norm("00012345678901234567890/00024691357802469135780",
                "12345678901234567890/24691357802469135780"); /* too big to reduce */
    expect_norm("9999999999999999999/3333333333333333333", "3"); /* 19 digits: reduced */
    expect_norm("$42$", "42");
    expect_norm("$$42$$", "42");
    expect_norm("\\(42\\)", "42");
    expect_norm("\\[ 42 \\]", "42");
    expect_norm("\\text{Paris}", "Paris");
    expect_norm("5\\text{ cm}", "5 cm");
    expect_norm("\\textbf{\\text{B}}", "B");
    expect_norm("1\\,000", "1000");
    expect_norm("1{,}000", "1{,}000"); /* not a recognised form: kept */
    expect_norm("\\$18.00", "18");
    expect_norm("$18", "18");
    expect_norm("50\\%", "50");
    expect_norm("50%", "50");
    expect_norm("90^\\circ", "90");
    expect_norm("90^{\\circ}", "90");
    expect_norm("90\xC2\xB0", "90");
    expect_norm("\\left( 1, 2 \\right)", "( 1, 2 )");
    expect_norm("\\left\\{1\\right.", "\\{1");
    expect_norm("\\leftarrow", "\\leftarrow");
    expect_norm("The  Eiffel\n\tTower.", "The Eiffel Tower");
    expect_norm("Yes", "Yes");
    expect_norm("1e5", "1e5");
    expect_norm("\xE2\x88\x92" "7", "-7");
    expect_norm("1\xC2\xA0" "000", "1 000");
    expect_norm("a\0b", "a"); /* strlen stops at the NUL; see test_normalize_hostile for len */
    expect_norm("", "");
    expect_norm("   ", "");
    expect_norm("$$", "");
    expect_norm("\\text{}", "");
    expect_norm("...", "");
    /* nested wrappers, peeled layer by layer */
    expect_norm(" $\\boxed{\\text{ 3.50 }}$. ", "3.5");
    expect_norm("\\boxed{1} + \\boxed{2}", "\\boxed{1} + \\boxed{2}"); /* not one box */
}
END_TEST

/* Each class normalises to one string, and different classes to different strings. */
static const char *const classes[][8] = {
    {"42", "42.0", "042", "$42$", "\\boxed{42}", "42.", "  42  ", "\\text{42}"},
    {"1234", "1,234", "1234.00", "$1,234$", "\\$1,234", "1\\,234", "\\boxed{1,234}", NULL},
    {"3/4", "6/8", "\\frac{3}{4}", "\\dfrac{6}{8}", "\\tfrac34", "$\\frac{9}{12}$", "-6/-8", NULL},
    {"-3/4", "-\\frac{3}{4}", "\\frac{-3}{4}", "\\frac{3}{-4}", "\xE2\x88\x92" "3/4", NULL},
    {"0.5", ".5", "0.50", "+0.5", "$.5$", NULL},
    {"0", "-0", "0.0", "-0.00", "000", "0/7", NULL},
    {"-7", "\xE2\x88\x92" "7", "-7.0", "$-7$", "-007", NULL},
    {"Paris", "\\text{Paris}", "Paris.", " Paris ", "\\textbf{Paris}", "$\\text{Paris}$", NULL},
    {"1/2", "2/4", "\\frac12", "\\frac{1}{2}", NULL},
    {"2", "4/2", "\\frac{8}{4}", "2.000", NULL},
    {"New York", "New  York", "New\nYork", "\\text{New York}.", NULL},
    {"(B)", "\\text{(B)}", "\\boxed{(B)}", NULL},
};

START_TEST(test_normalize_classes) {
    const size_t n_classes = sizeof classes / sizeof classes[0];
    char *canon[sizeof classes / sizeof classes[0]];
    for (size_t c = 0; c < n_classes; c++) {
        canon[c] = norm(classes[c][0]);
        for (size_t k = 1; k < 8 && classes[c][k]; k++) {
            char *got = norm(classes[c][k]);
            ck_assert_msg(strcmp(got, canon[c]) == 0, "\"%s\" → \"%s\", but \"%s\" → \"%s\"",
                          classes[c][k], got, classes[c][0], canon[c]);
            free(got);
        }
        for (size_t d = 0; d < c; d++)
            ck_assert_msg(strcmp(canon[c], canon[d]) != 0, "classes %zu and %zu merge into \"%s\"",
                          c, d, canon[c]);
    }
    /* normalisation is idempotent */
    for (size_t c = 0; c < n_classes; c++) {
        char *again = norm(canon[c]);
        ck_assert_str_eq(again, canon[c]);
        free(again);
        free(canon[c]);
    }
}
END_TEST

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *repeat(const char *unit, size_t times, size_t *len) {
    const size_t u = strlen(unit);
    char *s = malloc(u * times + 1);
    for (size_t i = 0; i < times; i++) memcpy(s + i * u, unit, u);
    s[u * times] = '\0';
    *len = u * times;
    return s;
}

/* Normalises and extracts with every method; asserts valid UTF-8 out, and returns the time. */
static double survive(const char *s, size_t len) {
    const double t0 = seconds();
    char *n = answer_normalize(s, len);
    ck_assert_ptr_nonnull(n);
    ck_assert_uint_eq(utf8_validate((const uint8_t *)n, strlen(n)), strlen(n));
    free(n);
    for (int32_t kind = REASON_EXTRACT_AUTO; kind <= REASON_EXTRACT_FINAL_LINE; kind++) {
        char *out = NULL;
        ck_assert_int_eq(answer_extract(kind, NULL, NULL, s, len, &out), REASON_OK);
        if (out) ck_assert_uint_eq(utf8_validate((const uint8_t *)out, strlen(out)), strlen(out));
        free(out);
    }
    char *out = NULL;
    reason_status st = answer_extract(REASON_EXTRACT_REGEX, "\\{(\\d*)\\}", NULL, s, len, &out);
    ck_assert_int_eq(st, REASON_OK);
    free(out);
    return seconds() - t0;
}

START_TEST(test_normalize_hostile) {
    static const char *const units[] = {
        "{",         "}",          "\\boxed{",  "\\text{",    "$",       "\\frac{",     "\\",
        "\\boxed{1", "1,",         "\\left",    "9",          "answer:", "answer is ", ".",
        "\xFF",      "\xE2\x88",   "\\frac{1}", "{\\boxed{",  "-",       "\\$",         "^\\circ",
        "\\(",       "\\boxed{}}", "/",         "\\text{\\}", "%",       "**Answer:** "};
    double worst = 0.0;
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        size_t len;
        char *s = repeat(units[u], 100000 / strlen(units[u]) + 1, &len);
        const double t = survive(s, len);
        worst = t > worst ? t : worst;
        free(s);
    }
    /* linear passes: ~100 kB each in well under a second even under sanitizers */
    ck_assert_msg(worst < 5.0, "slowest hostile input took %.2f s", worst);

    /* deep nesting still finds the box */
    size_t l1, l2;
    char *open = repeat("{", 50000, &l1), *close = repeat("}", 50000, &l2);
    size_t len = l1 + l2 + 20;
    char *s = malloc(len + 1);
    snprintf(s, len + 1, "\\boxed{%s7%s}", open, close);
    char *out = NULL;
    ck_assert_int_eq(answer_extract(REASON_EXTRACT_BOXED, NULL, NULL, s, strlen(s), &out),
                     REASON_OK);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(strlen(out), l1 + l2 + 1);
    ck_assert_int_eq(out[l1], '7');
    free(out);
    free(s);
    free(open);
    free(close);

    /* a 100k-digit number: canonicalised as text, no overflow */
    size_t ld;
    char *digits = repeat("0", 100000, &ld);
    digits[ld - 1] = '5';
    char *n = answer_normalize(digits, ld);
    ck_assert_str_eq(n, "5");
    free(n);
    free(digits);

    /* embedded NULs and invalid UTF-8 with an explicit length */
    const char bytes[] = {'4', '\0', '2', (char)0xC3, (char)0x28, ' ', (char)0xED, (char)0xA0,
                          (char)0x80};
    n = answer_normalize(bytes, sizeof bytes);
    ck_assert_str_eq(n, "42\xEF\xBF\xBD( \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    free(n);
    n = answer_normalize(NULL, 5);
    ck_assert_str_eq(n, "");
    free(n);

    /* random soup of the dangerous pieces */
    srand(12345);
    for (int iter = 0; iter < 300; iter++) {
        char buf[600];
        size_t m = 0;
        while (m < 500) {
            const char *piece = units[rand() % (int)(sizeof units / sizeof units[0])];
            size_t k = strlen(piece);
            memcpy(buf + m, piece, k);
            m += k;
            if (rand() % 4 == 0) buf[m++] = (char)(rand() % 256);
        }
        survive(buf, m);
    }
}
END_TEST

/* ---------------------------------------------------------------------------------------------- */
/* Confidence */

START_TEST(test_token_confidence) {
    reason_token_choice c = {0};
    c.logprob = -0.25f;
    ck_assert_float_eq_tol(token_confidence(&c), 0.25f, 1e-7f);
    c.n_top = 3;
    c.top_logprobs[0] = -0.1f;
    c.top_logprobs[1] = -2.0f;
    c.top_logprobs[2] = -3.9f;
    ck_assert_float_eq_tol(token_confidence(&c), 2.0f, 1e-6f);
    c.top_logprobs[2] = -INFINITY; /* clamped to -100 */
    ck_assert_float_eq_tol(token_confidence(&c), (0.1f + 2.0f + 100.0f) / 3.0f, 1e-4f);
    c.top_logprobs[2] = NAN;
    ck_assert_float_eq_tol(token_confidence(&c), (0.1f + 2.0f + 100.0f) / 3.0f, 1e-4f);
    c.n_top = 1000; /* more than the array holds: clamped to REASON_MAX_LOGPROBS */
    for (int i = 0; i < REASON_MAX_LOGPROBS; i++) c.top_logprobs[i] = -1.0f;
    ck_assert_float_eq_tol(token_confidence(&c), 1.0f, 1e-6f);
    c.n_top = 0;
    c.logprob = 0.5f; /* impossible, clamped to 0 */
    ck_assert_float_eq(token_confidence(&c), 0.0f);
    ck_assert_float_eq(token_confidence(NULL), 0.0f);
}
END_TEST

/* The brute-force reference: lowest mean over all full windows, or the mean of all when fewer. */
static double brute_lowest(const float *conf, int n, int w) {
    if (n == 0) return INFINITY;
    if (n < w) {
        double s = 0.0;
        for (int i = 0; i < n; i++) s += conf[i];
        return s / n;
    }
    double best = INFINITY;
    for (int start = 0; start + w <= n; start++) {
        double s = 0.0;
        for (int i = start; i < start + w; i++) s += conf[i];
        if (s / w < best) best = s / w;
    }
    return best;
}

static double brute_current(const float *conf, int n, int w) {
    if (n == 0) return INFINITY;
    const int k = n < w ? n : w;
    double s = 0.0;
    for (int i = n - k; i < n; i++) s += conf[i];
    return s / k;
}

static float frand(float lo, float hi) { return lo + (hi - lo) * (float)rand() / (float)RAND_MAX; }

START_TEST(test_confidence_brute_force) {
    srand(777);
    static const int windows[] = {1, 2, 3, 7, 16, 64};
    for (size_t wi = 0; wi < sizeof windows / sizeof windows[0]; wi++) {
        for (int rep = 0; rep < 20; rep++) {
            const int w = windows[wi];
            const int n = rand() % 300;
            float *conf = malloc((size_t)(n + 1) * sizeof *conf);
            float *lp = malloc((size_t)(n + 1) * sizeof *lp);
            confidence_tracker t;
            ck_assert_int_eq(confidence_init(&t, w), REASON_OK);
            ck_assert(isinf(confidence_lowest_group(&t)) && confidence_lowest_group(&t) > 0);
            ck_assert(isinf(confidence_current_group(&t)));
            ck_assert_float_eq(confidence_mean_logprob(&t), 0.0f);
            double lp_sum = 0.0;
            for (int i = 0; i < n; i++) {
                /* a confident stretch with occasional dips, as in real traces */
                conf[i] = rand() % 10 == 0 ? frand(0.0f, 1.0f) : frand(2.0f, 15.0f);
                lp[i] = frand(-6.0f, 0.0f);
                confidence_add(&t, lp[i], conf[i]);
                lp_sum += lp[i];
                const int m = i + 1;
                ck_assert_msg(fabs(confidence_lowest_group(&t) - brute_lowest(conf, m, w)) < 1e-4,
                              "w=%d n=%d: lowest %f, brute %f", w, m, confidence_lowest_group(&t),
                              brute_lowest(conf, m, w));
                ck_assert_msg(fabs(confidence_current_group(&t) - brute_current(conf, m, w)) < 1e-4,
                              "w=%d n=%d: current %f, brute %f", w, m,
                              confidence_current_group(&t), brute_current(conf, m, w));
                ck_assert(fabs(confidence_mean_logprob(&t) - lp_sum / m) < 1e-4);
            }
            ck_assert_int_eq(t.n, n);
            confidence_free(&t);
            ck_assert_ptr_null(t.ring);
            confidence_free(&t); /* twice is fine */
            free(conf);
            free(lp);
        }
    }
}
END_TEST

START_TEST(test_confidence_details) {
    confidence_tracker t;
    ck_assert_int_eq(confidence_init(&t, 0), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(confidence_init(&t, -3), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(confidence_init(NULL, 4), REASON_ERR_INVALID_ARG);

    /* partial window: the lowest group is the mean of all, even if a prefix was lower */
    ck_assert_int_eq(confidence_init(&t, 4), REASON_OK);
    confidence_add(&t, -1.0f, 1.0f);
    ck_assert_float_eq_tol(confidence_lowest_group(&t), 1.0f, 1e-6f);
    confidence_add(&t, -1.0f, 5.0f);
    ck_assert_float_eq_tol(confidence_lowest_group(&t), 3.0f, 1e-6f);
    confidence_add(&t, -1.0f, 6.0f);
    confidence_add(&t, -1.0f, 8.0f); /* first full window: 20/4 */
    ck_assert_float_eq_tol(confidence_lowest_group(&t), 5.0f, 1e-6f);
    confidence_add(&t, -1.0f, 9.0f); /* 28/4 = 7: lowest stays 5 */
    ck_assert_float_eq_tol(confidence_lowest_group(&t), 5.0f, 1e-6f);
    ck_assert_float_eq_tol(confidence_current_group(&t), 7.0f, 1e-6f);
    /* hostile values stay finite */
    confidence_add(&t, NAN, NAN);
    confidence_add(&t, -INFINITY, INFINITY);
    ck_assert(isfinite(confidence_lowest_group(&t)));
    ck_assert(isfinite(confidence_current_group(&t)));
    ck_assert(isfinite(confidence_mean_logprob(&t)));
    /* window {9, 0, 100} + 8: NaN conf as 0, +inf as 100 */
    ck_assert_float_eq_tol(confidence_current_group(&t), (8.0f + 9.0f + 0.0f + 100.0f) / 4, 1e-5f);
    ck_assert_float_eq_tol(confidence_mean_logprob(&t), (5 * -1.0f - 200.0f) / 7, 1e-5f);
    confidence_free(&t);

    /* a long trace: no drift over a million tokens */
    ck_assert_int_eq(confidence_init(&t, 128), REASON_OK);
    srand(5);
    for (int i = 0; i < 1000000; i++) confidence_add(&t, -0.5f, frand(1.0f, 20.0f));
    for (int i = 0; i < 128; i++) confidence_add(&t, -0.5f, 3.25f);
    ck_assert_float_eq_tol(confidence_current_group(&t), 3.25f, 1e-5f);
    confidence_free(&t);
}
END_TEST

START_TEST(test_vote_weight) {
    confidence_tracker t;
    ck_assert_int_eq(confidence_init(&t, 2), REASON_OK);
    ck_assert_double_eq(vote_weight(REASON_VOTE_MAJORITY, &t), 1.0);
    ck_assert_double_eq(vote_weight(REASON_VOTE_MEAN_LOGPROB, &t), 1.0); /* no tokens */
    ck_assert_double_eq(vote_weight(REASON_VOTE_LOWEST_GROUP, &t), 1e-6);
    confidence_add(&t, -0.2f, 4.0f);
    confidence_add(&t, -0.6f, 2.0f);
    confidence_add(&t, -0.1f, 6.0f);
    ck_assert_double_eq(vote_weight(REASON_VOTE_MAJORITY, &t), 1.0);
    ck_assert_double_eq_tol(vote_weight(REASON_VOTE_MEAN_LOGPROB, &t), exp(-0.3), 1e-6);
    ck_assert_double_eq_tol(vote_weight(REASON_VOTE_LOWEST_GROUP, &t), 3.0, 1e-6);
    ck_assert_double_eq(vote_weight(42, &t), 1.0);
    confidence_free(&t);
    /* weights stay in (0, 1] even for very unlikely traces */
    ck_assert_int_eq(confidence_init(&t, 2), REASON_OK);
    confidence_add(&t, -1e30f, 0.0f);
    const double w = vote_weight(REASON_VOTE_MEAN_LOGPROB, &t);
    ck_assert(w > 0.0 && w <= 1.0);
    ck_assert_double_eq(vote_weight(REASON_VOTE_LOWEST_GROUP, &t), 1e-6); /* clamped minimum */
    confidence_free(&t);
}
END_TEST

/* ---------------------------------------------------------------------------------------------- */
/* Tally */

static vote_tally *tally_new(void) {
    vote_tally *t = NULL;
    ck_assert_int_eq(vote_tally_create(&t), REASON_OK);
    ck_assert_ptr_nonnull(t);
    return t;
}

static void expect_rank(const vote_tally *t, int32_t i, const char *answer, int32_t count,
                        double weight) {
    int32_t c = -1;
    double w = -1.0;
    const char *a = vote_tally_answer(t, i, &c, &w);
    ck_assert_msg(a && strcmp(a, answer) == 0, "rank %d: want %s, got %s", i, answer,
                  a ? a : "(NULL)");
    ck_assert_int_eq(c, count);
    ck_assert_double_eq_tol(w, weight, 1e-12);
}

START_TEST(test_tally_order) {
    vote_tally *t = tally_new();
    ck_assert_int_eq(vote_tally_n_answers(t), 0);
    ck_assert_ptr_null(vote_tally_answer(t, 0, NULL, NULL));
    ck_assert_int_eq(vote_tally_add(t, "7", 1.0), REASON_OK);
    ck_assert_int_eq(vote_tally_add(t, "5", 1.0), REASON_OK);
    ck_assert_int_eq(vote_tally_add(t, NULL, 1.0), REASON_OK); /* no answer */
    ck_assert_int_eq(vote_tally_add(t, "", 3.0), REASON_OK);   /* no answer */
    /* tie on weight and count: first seen first */
    ck_assert_int_eq(vote_tally_n_answers(t), 2);
    expect_rank(t, 0, "7", 1, 1.0);
    expect_rank(t, 1, "5", 1, 1.0);
    ck_assert_double_eq(vote_tally_total_weight(t), 2.0);
    ck_assert_int_eq(vote_tally_add(t, "5", 1.0), REASON_OK);
    expect_rank(t, 0, "5", 2, 2.0);
    expect_rank(t, 1, "7", 1, 1.0);
    /* weight beats count */
    ck_assert_int_eq(vote_tally_add(t, "9", 2.5), REASON_OK);
    expect_rank(t, 0, "9", 1, 2.5);
    expect_rank(t, 1, "5", 2, 2.0);
    expect_rank(t, 2, "7", 1, 1.0);
    /* equal weight: more votes first */
    ck_assert_int_eq(vote_tally_add(t, "7", 1.5), REASON_OK);
    expect_rank(t, 0, "7", 2, 2.5);
    expect_rank(t, 1, "9", 1, 2.5);
    expect_rank(t, 2, "5", 2, 2.0);
    ck_assert_double_eq(vote_tally_total_weight(t), 7.0);
    /* answers compare exactly (normalisation is the caller's) */
    ck_assert_int_eq(vote_tally_add(t, "07", 0.0), REASON_OK);
    ck_assert_int_eq(vote_tally_n_answers(t), 4);
    expect_rank(t, 3, "07", 1, 0.0);
    /* bad weights */
    ck_assert_int_eq(vote_tally_add(t, "7", -1.0), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(vote_tally_add(t, "7", NAN), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(vote_tally_add(t, "7", INFINITY), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(vote_tally_add(NULL, "7", 1.0), REASON_ERR_INVALID_ARG);
    ck_assert_double_eq(vote_tally_total_weight(t), 7.0);
    int32_t c = 5;
    double w = 5.0;
    ck_assert_ptr_null(vote_tally_answer(t, 4, &c, &w));
    ck_assert_int_eq(c, 0);
    ck_assert_ptr_null(vote_tally_answer(t, -1, &c, &w));
    vote_tally_free(t);
    vote_tally_free(NULL);

    /* many answers: the order is a total sort of (weight desc, count desc, first seen asc) */
    t = tally_new();
    srand(99);
    char name[16];
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "a%d", rand() % 60);
        ck_assert_int_eq(vote_tally_add(t, name, (double)(rand() % 4) * 0.5), REASON_OK);
    }
    ck_assert_int_eq(vote_tally_n_answers(t), 60);
    double total = 0.0;
    int32_t votes = 0;
    for (int32_t i = 0; i < vote_tally_n_answers(t); i++) {
        int32_t ci;
        double wi;
        vote_tally_answer(t, i, &ci, &wi);
        total += wi;
        votes += ci;
        if (i > 0) {
            int32_t cp;
            double wp;
            vote_tally_answer(t, i - 1, &cp, &wp);
            ck_assert(wp > wi || (wp == wi && cp >= ci));
        }
    }
    ck_assert_int_eq(votes, 2000);
    ck_assert_double_eq_tol(total, vote_tally_total_weight(t), 1e-9);
    vote_tally_free(t);
}
END_TEST

/* Feeds answers (one char each, '-' for no answer) with weight 1 and reports after how many votes
 * the tally of n_total traces is first decided, or 0 if never before the end. */
static int decided_after(const char *votes, int n_total, float share) {
    vote_tally *t = tally_new();
    int when = 0;
    for (int i = 0; votes[i]; i++) {
        char a[2] = {votes[i], 0};
        ck_assert_int_eq(vote_tally_add(t, votes[i] == '-' ? NULL : a, 1.0), REASON_OK);
        if (i + 1 < n_total && vote_tally_decided(t, n_total - (i + 1), 1.0, share)) {
            when = i + 1;
            break;
        }
    }
    vote_tally_free(t);
    return when;
}

START_TEST(test_tally_decided) {
    /* 8 traces, A A A A A: after 5, 3 remaining cannot overtake (5 > 0 + 3); after 4, 4 may tie */
    ck_assert_int_eq(decided_after("AAAAA", 8, 0.0f), 5);
    /* A B A A A A: after 5, A=4 > B=1 + 3 is false; after 6, A=5 > 1 + 2 */
    ck_assert_int_eq(decided_after("ABAAAA", 8, 0.0f), 6);
    ck_assert_int_eq(decided_after("ABABAB", 8, 0.0f), 0);
    /* no answers are not votes for anyone */
    ck_assert_int_eq(decided_after("--A", 4, 0.0f), 0);  /* A=1 > 0 + 1 is false */
    ck_assert_int_eq(decided_after("--AA", 5, 0.0f), 4); /* A=2 > 0 + 1 */
    /* share 0.5: the leader needs half of cast + still possible weight */
    ck_assert_int_eq(decided_after("AAAA", 8, 0.5f), 4); /* 4 >= 0.5 * (4 + 4) */
    ck_assert_int_eq(decided_after("AAA", 8, 0.5f), 0);  /* 3 < 0.5 * 8 */
    ck_assert_int_eq(decided_after("ABAB", 8, 0.5f), 0); /* 2 < 4 */

    vote_tally *t = tally_new();
    /* no answers: decided only when nothing remains */
    ck_assert(!vote_tally_decided(t, 3, 1.0, 0.0f));
    ck_assert(vote_tally_decided(t, 0, 1.0, 0.0f));
    ck_assert(vote_tally_decided(t, -1, 1.0, 0.0f));
    ck_assert_int_eq(vote_tally_add(t, "A", 0.75), REASON_OK);
    ck_assert_int_eq(vote_tally_add(t, "B", 0.25), REASON_OK);
    /* weighted (binary fractions, exact): L=0.75, R=0.25, M = n_remaining * max_weight */
    ck_assert(vote_tally_decided(t, 2, 0.125, 0.0f));  /* 0.75 > 0.5 */
    ck_assert(vote_tally_decided(t, 3, 0.125, 0.0f));  /* 0.75 > 0.625 */
    ck_assert(!vote_tally_decided(t, 4, 0.125, 0.0f)); /* 0.75 > 0.75 is false: a tie is possible */
    ck_assert(!vote_tally_decided(t, 2, 0.5, 0.0f));
    /* share rule: 0.75 >= share * (1.0 + M) */
    ck_assert(vote_tally_decided(t, 4, 0.125, 0.5f));   /* 0.5 * 1.5 = 0.75 */
    ck_assert(!vote_tally_decided(t, 4, 0.125, 0.55f)); /* 0.825 */
    ck_assert(vote_tally_decided(t, 8, 0.125, 0.375f)); /* 0.375 * 2 = 0.75 */
    ck_assert(!vote_tally_decided(t, 9, 0.125, 0.375f));
    ck_assert(!vote_tally_decided(t, 4, 0.125, 1.5f));
    /* max_weight 0 (or nonsense): remaining traces cannot change anything */
    ck_assert(vote_tally_decided(t, 5, 0.0, 0.0f));
    ck_assert(vote_tally_decided(t, 5, -1.0, 0.0f));
    ck_assert(vote_tally_decided(t, 5, NAN, 0.0f));
    ck_assert(!vote_tally_decided(NULL, 5, 1.0, 0.0f));
    vote_tally_free(t);
}
END_TEST

/* ---------------------------------------------------------------------------------------------- */
/* Pruning threshold */

START_TEST(test_prune_threshold) {
    const float v[] = {4.0f, 1.0f, 3.0f, 2.0f, 5.0f}; /* sorted: 1 2 3 4 5 */
    /* keep 90%: 10th percentile, rank 0.1 * 4 = 0.4 → 1 + 0.4 * (2 - 1) */
    ck_assert_float_eq_tol(prune_threshold(v, 5, 90.0f), 1.4f, 1e-6f);
    /* keep 10%: 90th percentile, rank 3.6 → 4 + 0.6 */
    ck_assert_float_eq_tol(prune_threshold(v, 5, 10.0f), 4.6f, 1e-6f);
    ck_assert_float_eq_tol(prune_threshold(v, 5, 50.0f), 3.0f, 1e-6f);
    ck_assert_float_eq_tol(prune_threshold(v, 5, 100.0f), 1.0f, 1e-6f);
    ck_assert_float_eq_tol(prune_threshold(v, 5, 0.0f), 5.0f, 1e-6f);
    ck_assert_float_eq_tol(prune_threshold(v, 5, 250.0f), 1.0f, 1e-6f);
    ck_assert_float_eq_tol(prune_threshold(v, 5, -3.0f), 5.0f, 1e-6f);
    /* four values 10 20 40 80, keep 90: rank 0.3 → 10 + 0.3 * 10 = 13; keep 25: rank 2.25 → 50 */
    const float w[] = {80.0f, 10.0f, 40.0f, 20.0f};
    ck_assert_float_eq_tol(prune_threshold(w, 4, 90.0f), 13.0f, 1e-5f);
    ck_assert_float_eq_tol(prune_threshold(w, 4, 25.0f), 50.0f, 1e-5f);
    /* one value: it */
    ck_assert_float_eq(prune_threshold(w, 1, 90.0f), 80.0f);
    /* n == 0: -inf, nothing is pruned */
    ck_assert(isinf(prune_threshold(w, 0, 90.0f)) && prune_threshold(w, 0, 90.0f) < 0);
    ck_assert(isinf(prune_threshold(NULL, 3, 90.0f)));
    ck_assert(isinf(prune_threshold(w, 4, NAN)));
    /* NaN ignored; +inf (a warm-up trace without tokens) handled without NaN */
    const float x[] = {NAN, 2.0f, INFINITY, 1.0f};
    ck_assert_float_eq_tol(prune_threshold(x, 4, 50.0f), 2.0f, 1e-6f);
    ck_assert(isinf(prune_threshold(x, 4, 25.0f)));       /* between 2 and +inf */
    ck_assert_float_eq(prune_threshold(x, 4, 100.0f), 1.0f);
    const float neg[] = {1.0f, -INFINITY};
    ck_assert(isinf(prune_threshold(neg, 2, 50.0f)) && prune_threshold(neg, 2, 50.0f) < 0);
    ck_assert_float_eq(prune_threshold(neg, 2, 0.0f), 1.0f);
    const float y[] = {INFINITY, INFINITY};
    ck_assert(isinf(prune_threshold(y, 2, 50.0f)));
    /* input not modified */
    ck_assert_float_eq(w[0], 80.0f);
}
END_TEST

static Suite *vote_suite(void) {
    Suite *s = suite_create("vote");
    TCase *tc = tcase_create("vote");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_extract_table);
    tcase_add_test(tc, test_extract_args);
    tcase_add_test(tc, test_extract_regex);
    tcase_add_test(tc, test_regex_errors);
    tcase_add_test(tc, test_extract_callback);
    tcase_add_test(tc, test_normalize_rules);
    tcase_add_test(tc, test_normalize_classes);
    tcase_add_test(tc, test_normalize_hostile);
    tcase_add_test(tc, test_token_confidence);
    tcase_add_test(tc, test_confidence_brute_force);
    tcase_add_test(tc, test_confidence_details);
    tcase_add_test(tc, test_vote_weight);
    tcase_add_test(tc, test_tally_order);
    tcase_add_test(tc, test_tally_decided);
    tcase_add_test(tc, test_prune_threshold);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(vote_suite()); }
