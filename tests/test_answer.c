/*
 * test_answer.c - strix_answer_extract on hand-written cases whose answers
 * are read off by eye, and on the reference solutions of the bundled GSM8K
 * test set, whose "#### N" lines are parsed here independently (a plain
 * sscanf after the marker, commas dropped).
 */
#include "fixtures.h"
#include "harness.h"
#include "strix.h"

static void expect(const char *text, const char *want)
{
    char got[32];
    const int found = strix_answer_extract(text, strlen(text), got, sizeof got);
    CHECKF(found == (want != NULL) && strcmp(got, want ? want : "") == 0,
           "'%s': got %d '%s', want '%s'", text, found, got, want ? want : "(none)");
}

int main(void)
{
    expect("She makes 9 * 2 = $18 every day.\n#### 18", "18");
    expect("#### 1,000", "1000");
    expect("so 5 + 5 = 10 apples\n####   $12.50", "12.5");
    expect("#### -3", "-3");
    expect("#### 18.00", "18");
    expect("#### 007", "7");
    expect("First 3, then 4, so the answer is 7.", "7");
    expect("The answer is 2,500 dollars. ", "2500");
    expect("1.5 times 4 is 6.0", "6");
    expect("no numbers here", NULL);
    expect("", NULL);
    expect("#### none, but 42 before? no: 5 after", "5");
    expect("at -0 degrees", "0");
    expect("x-4 is not negative four: 10-4=6", "6");
    expect("item3 costs 12", "12");
    char tiny[3];
    CHECK(strix_answer_extract("#### 12345", 10, tiny, sizeof tiny) == 0); /* does not fit */
    /* the reference solutions of the test set */
    size_t len = 0;
    char *buf = test_read_file(test_path("gsm8k-test.jsonl"), &len);
    int n = 0;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        const char *mark = strstr(line, "#### ");
        if (mark) {
            char raw[64], want[64];
            size_t k = 0;
            CHECK(sscanf(mark + 5, "%63[-0-9,.]", raw) == 1);
            for (size_t i = 0; raw[i] && k < sizeof want - 1; i++)
                if (raw[i] != ',')
                    want[k++] = raw[i];
            want[k] = '\0';
            /* the JSON line ends the answer with a quote: cut there */
            const char *end = strchr(mark, '"');
            char got[64];
            CHECK(strix_answer_extract(line, (size_t)(end - line), got, sizeof got) == 1);
            CHECKF(strcmp(got, want) == 0, "line %d: got '%s', want '%s'", n + 1, got, want);
            n++;
        }
        line = nl ? nl + 1 : NULL;
    }
    printf("gsm8k reference answers: %d extracted\n", n);
    CHECK(n == 1319);
    free(buf);
    TEST_MAIN_END();
}
