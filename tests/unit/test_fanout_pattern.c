/*
 * Unit tests for fanout_pattern: the EventBridge / Lambda FilterCriteria
 * language over change documents. Conformance tables of {pattern, document,
 * expected} by operator, and a table of invalid patterns with the error
 * each must name.
 *
 * JSON in the tables is written with single quotes for readability; they
 * become double quotes before parsing (no case needs a literal apostrophe).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "fanout_pattern.h"
#include "hr_compat.h"
#include "hr_time.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

struct match_case {
    const char *pattern;
    const char *doc;
    bool match;
};

struct invalid_case {
    const char *pattern;
    const char *error; /* substring of errstr */
};

#define M(p, d)    \
    {              \
        p, d, true \
    }
#define N(p, d)     \
    {               \
        p, d, false \
    }

static size_t n_match_cases;
static size_t n_invalid_cases;

static json_t *load(const char *text)
{
    char *buf = strdup(text);
    json_error_t err;
    json_t *v;
    char *c;

    assert_non_null(buf);
    for (c = buf; *c; c++)
        if (*c == '\'')
            *c = '"';
    v = json_loads(buf, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!v)
        print_error("bad test JSON %s: %s\n", buf, err.text);
    free(buf);
    assert_non_null(v);
    return v;
}

/* Run every case, print each failure with its index and JSON, then fail
 * once if any did, so one run shows every broken case. */
static void
run_match_cases(const char *table, const struct match_case *cases, size_t n)
{
    size_t i, failures = 0;

    for (i = 0; i < n; i++) {
        char errstr[256] = "";
        json_t *pattern = load(cases[i].pattern);
        json_t *doc = load(cases[i].doc);
        struct fanout_pattern *p;
        bool got;

        p = fanout_pattern_compile(pattern, errstr, sizeof(errstr));
        if (!p) {
            print_error("%s[%zu]: pattern %s does not compile: %s\n", table, i,
                        cases[i].pattern, errstr);
            failures++;
        } else {
            got = fanout_pattern_match(p, doc);
            if (got != cases[i].match) {
                print_error("%s[%zu]: pattern %s doc %s: expected %s, got "
                            "%s\n",
                            table, i, cases[i].pattern, cases[i].doc,
                            cases[i].match ? "match" : "no match",
                            got ? "match" : "no match");
                failures++;
            }
        }
        fanout_pattern_free(p);
        json_decref(pattern);
        json_decref(doc);
    }
    n_match_cases += n;
    assert_int_equal(failures, 0);
}

#define RUN(cases) run_match_cases(__func__, cases, HR_ARRAY_SIZE(cases))

static void test_exact_values_match_by_type_and_value(void **state)
{
    static const struct match_case cases[] = {
        M("{'a':['x']}", "{'a':'x'}"),
        N("{'a':['x']}", "{'a':'y'}"),
        N("{'a':['x']}", "{}"),
        M("{'a':['x','y']}", "{'a':'y'}"),
        N("{'a':['X']}", "{'a':'x'}"),
        N("{'a':['x']}", "{'a':'x '}"),
        N("{'a':['5']}", "{'a':5}"),
        N("{'a':[5]}", "{'a':'5'}"),
        M("{'a':[true]}", "{'a':true}"),
        N("{'a':[true]}", "{'a':'true'}"),
        N("{'a':[true]}", "{'a':1}"),
        M("{'a':[false]}", "{'a':false}"),
        N("{'a':[false]}", "{'a':null}"),
        N("{'a':[false]}", "{'a':0}"),
        N("{'a':[false]}", "{}"),
        M("{'a':[1.5,'x',true]}", "{'a':1.5}"),
        M("{'a':[1.5,'x',true]}", "{'a':true}"),
        N("{'a':[1.5,'x',true]}", "{'a':'1.5'}"),
        /* strings are compared byte for byte, NUL included */
        M("{'a':['a\\u0000b']}", "{'a':'a\\u0000b'}"),
        N("{'a':['a\\u0000b']}", "{'a':'a'}"),
        M("{'a':['\\u00e9']}", "{'a':'\\u00e9'}"),
    };

    (void)state;
    RUN(cases);
}

static void test_numbers_compare_numerically(void **state)
{
    static const struct match_case cases[] = {
        M("{'a':[5]}", "{'a':5}"),
        M("{'a':[5]}", "{'a':5.0}"),
        M("{'a':[5.0]}", "{'a':5}"),
        M("{'a':[500]}", "{'a':5e2}"),
        M("{'a':[3.018e2]}", "{'a':301.8}"),
        M("{'a':[0]}", "{'a':-0.0}"),
        N("{'a':[5]}", "{'a':5.5}"),
        N("{'a':[5]}", "{'a':-5}"),
        /* integers compare exactly, beyond double precision */
        M("{'a':[9007199254740993]}", "{'a':9007199254740993}"),
        N("{'a':[9007199254740993]}", "{'a':9007199254740992}"),
        M("{'a':[123456789012]}", "{'a':[123456789012]}"),
    };

    (void)state;
    RUN(cases);
}

static void test_null_matches_present_null_and_empty_matches_empty(void **state)
{
    static const struct match_case cases[] = {
        M("{'a':[null]}", "{'a':null}"),
        N("{'a':[null]}", "{}"),
        N("{'a':[null]}", "{'a':''}"),
        N("{'a':[null]}", "{'a':0}"),
        N("{'a':[null]}", "{'a':false}"),
        N("{'a':[null]}", "{'a':{}}"),
        M("{'a':[null]}", "{'a':[1,null]}"),
        M("{'a':[null,'x']}", "{'a':'x'}"),
        M("{'a':['']}", "{'a':''}"),
        N("{'a':['']}", "{'a':null}"),
        N("{'a':['']}", "{}"),
        N("{'a':['']}", "{'a':' '}"),
        N("{'a':['']}", "{'a':[]}"),
    };

    (void)state;
    RUN(cases);
}

static void test_prefix_and_suffix_match_strings_only(void **state)
{
    static const struct match_case cases[] = {
        M("{'a':[{'prefix':'image/'}]}", "{'a':'image/png'}"),
        M("{'a':[{'prefix':'image/'}]}", "{'a':'image/'}"),
        N("{'a':[{'prefix':'image/'}]}", "{'a':'image'}"),
        N("{'a':[{'prefix':'image/'}]}", "{'a':'IMAGE/png'}"),
        N("{'a':[{'prefix':'image/'}]}", "{}"),
        N("{'a':[{'prefix':'5'}]}", "{'a':55}"),
        N("{'a':[{'prefix':'t'}]}", "{'a':true}"),
        M("{'a':[{'prefix':''}]}", "{'a':'anything'}"),
        M("{'a':[{'prefix':''}]}", "{'a':''}"),
        N("{'a':[{'prefix':''}]}", "{'a':null}"),
        M("{'a':[{'prefix':'\\u00e9'}]}", "{'a':'\\u00e9clair'}"),
        M("{'a':[{'prefix':{'equals-ignore-case':'IMAGE/'}}]}",
          "{'a':'Image/PNG'}"),
        N("{'a':[{'prefix':{'equals-ignore-case':'IMAGE/'}}]}",
          "{'a':'img/png'}"),
        M("{'a':[{'suffix':'.png'}]}", "{'a':'cat.png'}"),
        M("{'a':[{'suffix':'.png'}]}", "{'a':'.png'}"),
        N("{'a':[{'suffix':'.png'}]}", "{'a':'png'}"),
        N("{'a':[{'suffix':'.png'}]}", "{'a':'cat.PNG'}"),
        N("{'a':[{'suffix':'0'}]}", "{'a':10}"),
        M("{'a':[{'suffix':{'equals-ignore-case':'.PNG'}}]}",
          "{'a':'cat.png'}"),
        N("{'a':[{'suffix':{'equals-ignore-case':'.PNG'}}]}",
          "{'a':'cat.jpg'}"),
        M("{'a':[{'prefix':'x'},{'suffix':'z'}]}", "{'a':'abz'}"),
    };

    (void)state;
    RUN(cases);
}

static void test_equals_ignore_case_folds_ascii_letters_only(void **state)
{
    static const struct match_case cases[] = {
        M("{'a':[{'equals-ignore-case':'alice'}]}", "{'a':'ALICE'}"),
        M("{'a':[{'equals-ignore-case':'ALICE'}]}", "{'a':'aLiCe'}"),
        N("{'a':[{'equals-ignore-case':'alice'}]}", "{'a':'alice '}"),
        N("{'a':[{'equals-ignore-case':'alice'}]}", "{'a':'alic'}"),
        N("{'a':[{'equals-ignore-case':'alice'}]}", "{}"),
        M("{'a':[{'equals-ignore-case':''}]}", "{'a':''}"),
        N("{'a':[{'equals-ignore-case':'5'}]}", "{'a':5}"),
        /* non-ASCII bytes are compared exactly, ASCII around them folds */
        N("{'a':[{'equals-ignore-case':'\\u00c9cole'}]}",
          "{'a':'\\u00e9cole'}"),
        M("{'a':[{'equals-ignore-case':'\\u00e9cole'}]}",
          "{'a':'\\u00e9COLE'}"),
        /* only letters fold: '@'/'`' and '['/'{' differ by 0x20 too */
        N("{'a':[{'equals-ignore-case':'@'}]}", "{'a':'`'}"),
        N("{'a':[{'equals-ignore-case':'['}]}", "{'a':'{'}"),
        M("{'a':[{'equals-ignore-case':'a[1]'}]}", "{'a':'A[1]'}"),
    };

    (void)state;
    RUN(cases);
}

static void test_wildcard_matches_runs_and_escapes(void **state)
{
    static const struct match_case cases[] = {
        M("{'a':[{'wildcard':'Simple*Service'}]}",
          "{'a':'SimpleQueueService'}"),
        M("{'a':[{'wildcard':'Simple*Service'}]}", "{'a':'SimpleService'}"),
        N("{'a':[{'wildcard':'Simple*Service'}]}",
          "{'a':'SimpleQueueServices'}"),
        N("{'a':[{'wildcard':'Simple*Service'}]}",
          "{'a':'simpleQueueService'}"),
        M("{'a':[{'wildcard':'*'}]}", "{'a':''}"),
        M("{'a':[{'wildcard':'*'}]}", "{'a':'abc'}"),
        N("{'a':[{'wildcard':'*'}]}", "{'a':5}"),
        N("{'a':[{'wildcard':'*'}]}", "{}"),
        M("{'a':[{'wildcard':'a*b*c'}]}", "{'a':'abc'}"),
        M("{'a':[{'wildcard':'a*b*c'}]}", "{'a':'aXbYc'}"),
        M("{'a':[{'wildcard':'a*b*c'}]}", "{'a':'abcbc'}"),
        N("{'a':[{'wildcard':'a*b*c'}]}", "{'a':'acb'}"),
        N("{'a':[{'wildcard':'a*b*c'}]}", "{'a':'abcx'}"),
        M("{'a':[{'wildcard':'*.png'}]}", "{'a':'dir/x.png'}"),
        M("{'a':[{'wildcard':'dir/*'}]}", "{'a':'dir/'}"),
        M("{'a':[{'wildcard':'*/lib/*'}]}", "{'a':'/usr/lib/x'}"),
        N("{'a':[{'wildcard':'*/lib/*'}]}", "{'a':'/usr/lib'}"),
        /* anchored ends must not overlap */
        N("{'a':[{'wildcard':'ab*ba'}]}", "{'a':'aba'}"),
        M("{'a':[{'wildcard':'ab*ba'}]}", "{'a':'abba'}"),
        M("{'a':[{'wildcard':'*a*'}]}", "{'a':'bab'}"),
        N("{'a':[{'wildcard':'*a*'}]}", "{'a':'bbb'}"),
        M("{'a':[{'wildcard':'x*y*'}]}", "{'a':'xay'}"),
        N("{'a':[{'wildcard':'x*y*'}]}", "{'a':'xa'}"),
        M("{'a':[{'wildcard':'abc'}]}", "{'a':'abc'}"),
        N("{'a':[{'wildcard':'abc'}]}", "{'a':'abcd'}"),
        /* \* is a literal star, \\ a literal backslash */
        M("{'a':[{'wildcard':'a\\\\*b'}]}", "{'a':'a*b'}"),
        N("{'a':[{'wildcard':'a\\\\*b'}]}", "{'a':'axb'}"),
        M("{'a':[{'wildcard':'\\\\**'}]}", "{'a':'*abc'}"),
        N("{'a':[{'wildcard':'\\\\**'}]}", "{'a':'abc'}"),
        M("{'a':[{'wildcard':'a\\\\\\\\b'}]}", "{'a':'a\\\\b'}"),
        N("{'a':[{'wildcard':'a\\\\\\\\b'}]}", "{'a':'ab'}"),
        M("{'a':[{'wildcard':'*\\\\*'}]}", "{'a':'note*'}"),
        N("{'a':[{'wildcard':'*\\\\*'}]}", "{'a':'note'}"),
        M("{'a':[{'wildcard':'\\u00e9*t\\u00e9'}]}", "{'a':'\\u00e9t\\u00e9'}"),
    };

    (void)state;
    RUN(cases);
}

static void test_anything_but_matches_present_values_not_excluded(void **state)
{
    static const struct match_case cases[] = {
        M("{'a':[{'anything-but':'init'}]}", "{'a':'running'}"),
        N("{'a':[{'anything-but':'init'}]}", "{'a':'init'}"),
        N("{'a':[{'anything-but':'init'}]}", "{}"),
        M("{'a':[{'anything-but':'init'}]}", "{'a':null}"),
        M("{'a':[{'anything-but':'init'}]}", "{'a':5}"),
        M("{'a':[{'anything-but':'init'}]}", "{'a':'INIT'}"),
        N("{'a':[{'anything-but':'init'}]}", "{'a':{'b':'x'}}"),
        M("{'a':[{'anything-but':['stopped','overloaded']}]}",
          "{'a':'running'}"),
        N("{'a':[{'anything-but':['stopped','overloaded']}]}",
          "{'a':'stopped'}"),
        N("{'a':[{'anything-but':['stopped','overloaded']}]}",
          "{'a':'overloaded'}"),
        N("{'a':[{'anything-but':123}]}", "{'a':123}"),
        N("{'a':[{'anything-but':123}]}", "{'a':123.0}"),
        M("{'a':[{'anything-but':123}]}", "{'a':124}"),
        M("{'a':[{'anything-but':123}]}", "{'a':'123'}"),
        N("{'a':[{'anything-but':[100,200,300]}]}", "{'a':200}"),
        M("{'a':[{'anything-but':[100,200,300]}]}", "{'a':250}"),
        N("{'a':[{'anything-but':{'prefix':'init'}}]}", "{'a':'initializing'}"),
        M("{'a':[{'anything-but':{'prefix':'init'}}]}", "{'a':'running'}"),
        N("{'a':[{'anything-but':{'prefix':'init'}}]}", "{}"),
        M("{'a':[{'anything-but':{'prefix':'init'}}]}", "{'a':5}"),
        N("{'a':[{'anything-but':{'suffix':'.png'}}]}", "{'a':'a.png'}"),
        M("{'a':[{'anything-but':{'suffix':'.png'}}]}", "{'a':'a.jpg'}"),
        N("{'a':[{'anything-but':{'equals-ignore-case':'Init'}}]}",
          "{'a':'INIT'}"),
        M("{'a':[{'anything-but':{'equals-ignore-case':'Init'}}]}",
          "{'a':'run'}"),
        N("{'a':[{'anything-but':{'equals-ignore-case':['a','B']}}]}",
          "{'a':'b'}"),
        M("{'a':[{'anything-but':{'equals-ignore-case':['a','B']}}]}",
          "{'a':'c'}"),
        N("{'a':[{'anything-but':{'wildcard':'*/lib/*'}}]}",
          "{'a':'/usr/lib/x'}"),
        M("{'a':[{'anything-but':{'wildcard':'*/lib/*'}}]}",
          "{'a':'/usr/bin/x'}"),
        N("{'a':[{'anything-but':{'wildcard':['*.png','*.jpg']}}]}",
          "{'a':'x.jpg'}"),
        /* arrays: any element that is not excluded */
        M("{'a':[{'anything-but':'x'}]}", "{'a':['x','y']}"),
        N("{'a':[{'anything-but':'x'}]}", "{'a':['x','x']}"),
        N("{'a':[{'anything-but':'x'}]}", "{'a':[]}"),
        /* OR with another alternative */
        M("{'a':[{'anything-but':'x'},'x']}", "{'a':'x'}"),
    };

    (void)state;
    RUN(cases);
}

static void test_numeric_compares_json_numbers_only(void **state)
{
    static const struct match_case cases[] = {
        M("{'a':[{'numeric':['>',0,'<=',5]}]}", "{'a':5}"),
        M("{'a':[{'numeric':['>',0,'<=',5]}]}", "{'a':0.000001}"),
        N("{'a':[{'numeric':['>',0,'<=',5]}]}", "{'a':0}"),
        N("{'a':[{'numeric':['>',0,'<=',5]}]}", "{'a':5.000001}"),
        N("{'a':[{'numeric':['>',0,'<=',5]}]}", "{'a':'3'}"),
        N("{'a':[{'numeric':['>',0,'<=',5]}]}", "{}"),
        N("{'a':[{'numeric':['>',0,'<=',5]}]}", "{'a':null}"),
        N("{'a':[{'numeric':['>',0,'<=',5]}]}", "{'a':true}"),
        M("{'a':[{'numeric':['=',100]}]}", "{'a':100}"),
        M("{'a':[{'numeric':['=',100]}]}", "{'a':100.0}"),
        M("{'a':[{'numeric':['=',100]}]}", "{'a':1e2}"),
        N("{'a':[{'numeric':['=',100]}]}", "{'a':100.5}"),
        N("{'a':[{'numeric':['=',100]}]}", "{'a':'100'}"),
        M("{'a':[{'numeric':['=',3.018e2]}]}", "{'a':301.8}"),
        M("{'a':[{'numeric':['<',10]}]}", "{'a':9.99}"),
        N("{'a':[{'numeric':['<',10]}]}", "{'a':10}"),
        M("{'a':[{'numeric':['<',10]}]}", "{'a':-1e9}"),
        M("{'a':[{'numeric':['<=',10]}]}", "{'a':10}"),
        M("{'a':[{'numeric':['>=',-5]}]}", "{'a':-5}"),
        N("{'a':[{'numeric':['>=',-5]}]}", "{'a':-5.1}"),
        M("{'a':[{'numeric':['>',1.5]}]}", "{'a':2}"),
        M("{'a':[{'numeric':['>=',0,'<',1]}]}", "{'a':0}"),
        N("{'a':[{'numeric':['>=',0,'<',1]}]}", "{'a':1}"),
        M("{'a':[{'numeric':['>',10]}]}", "{'a':[1,20]}"),
        N("{'a':[{'numeric':['>',10]}]}", "{'a':[1,2]}"),
        N("{'a':[{'numeric':['>',10]}]}", "{'a':['20']}"),
        M("{'a':[{'numeric':['<',0]},{'numeric':['>',10]}]}", "{'a':-5}"),
        N("{'a':[{'numeric':['<',0]},{'numeric':['>',10]}]}", "{'a':5}"),
        M("{'a':[{'numeric':['<',0]},{'numeric':['>',10]}]}", "{'a':15}"),
        M("{'ts_ms':[{'numeric':['>=',1763769600000]}]}",
          "{'ts_ms':1763769600000}"),
    };

    (void)state;
    RUN(cases);
}

static void test_exists_tests_for_a_leaf_value(void **state)
{
    static const struct match_case cases[] = {
        M("{'a':[{'exists':true}]}", "{'a':'x'}"),
        M("{'a':[{'exists':true}]}", "{'a':''}"),
        M("{'a':[{'exists':true}]}", "{'a':false}"),
        M("{'a':[{'exists':true}]}", "{'a':0}"),
        /* null is a value; objects and empty arrays are not leaves */
        M("{'a':[{'exists':true}]}", "{'a':null}"),
        N("{'a':[{'exists':true}]}", "{}"),
        N("{'a':[{'exists':true}]}", "{'a':{'b':1}}"),
        N("{'a':[{'exists':true}]}", "{'a':[]}"),
        M("{'a':[{'exists':true}]}", "{'a':[1]}"),
        M("{'a':[{'exists':false}]}", "{}"),
        N("{'a':[{'exists':false}]}", "{'a':null}"),
        N("{'a':[{'exists':false}]}", "{'a':'x'}"),
        M("{'a':[{'exists':false}]}", "{'a':{'b':1}}"),
        M("{'a':[{'exists':false}]}", "{'a':[]}"),
        N("{'a':[{'exists':false}]}", "{'a':[null]}"),
        M("{'x':{'y':[{'exists':false}]}}", "{}"),
        M("{'x':{'y':[{'exists':false}]}}", "{'x':5}"),
        N("{'x':{'y':[{'exists':false}]}}", "{'x':{'y':5}}"),
        M("{'x':{'y':[{'exists':true}]}}", "{'x':{'y':0}}"),
        N("{'x':{'y':[{'exists':true}]}}", "{'x':{'z':0}}"),
        M("{'a':['x',{'exists':false}]}", "{'a':'x'}"),
        M("{'a':['x',{'exists':false}]}", "{}"),
        N("{'a':['x',{'exists':false}]}", "{'a':'y'}"),
        M("{'a':[{'exists':false}],'b':['1']}", "{'b':'1'}"),
        N("{'a':[{'exists':false}],'b':['1']}", "{'a':1,'b':'1'}"),
    };

    (void)state;
    RUN(cases);
}

static void test_document_arrays_match_when_any_element_matches(void **state)
{
    static const struct match_case cases[] = {
        M("{'a':['x']}", "{'a':['y','x']}"),
        N("{'a':['x']}", "{'a':['y','z']}"),
        N("{'a':['x']}", "{'a':[]}"),
        M("{'a':['x']}", "{'a':[['q'],['x']]}"),
        N("{'a':['x']}", "{'a':[{'b':'x'}]}"),
        M("{'a':[5]}", "{'a':[1,5.0]}"),
        M("{'a':['x','y']}", "{'a':['q','y']}"),
        M("{'changed':['text']}", "{'changed':['status','text']}"),
        M("{'e':{'first':['Anna']}}",
          "{'e':[{'first':'John'},{'first':'Anna'}]}"),
        /* one element must match the whole nested pattern */
        N("{'e':{'first':['Anna'],'last':['Jones']}}",
          "{'e':[{'first':'Anna','last':'Smith'},"
          "{'first':'Peter','last':'Jones'}]}"),
        M("{'e':{'first':['Anna'],'last':['Jones']}}",
          "{'e':[{'first':'Anna','last':'Smith'},"
          "{'first':'Anna','last':'Jones'}]}"),
        M("{'e':{'first':['Anna']}}", "{'e':[[{'first':'Anna'}]]}"),
        N("{'e':{'first':['Anna']}}", "{'e':[]}"),
        M("{'e':{'n':{'v':[{'prefix':'a'}]}}}",
          "{'e':[{'n':[{'v':'b'},{'v':'ab'}]}]}"),
    };

    (void)state;
    RUN(cases);
}

static void test_nested_objects_and_keys_are_anded(void **state)
{
    static const struct match_case cases[] = {
        M("{'new':{'kind':['text']}}", "{'new':{'kind':'text'}}"),
        N("{'new':{'kind':['text']}}", "{'new':{'kind':'image'}}"),
        N("{'new':{'kind':['text']}}", "{'new':'text'}"),
        N("{'new':{'kind':['text']}}", "{}"),
        N("{'new':{'kind':['text']}}", "{'kind':'text'}"),
        N("{'new':{'kind':['text']}}", "{'new':null}"),
        M("{'new':{'a':{'b':{'c':[1]}}}}", "{'new':{'a':{'b':{'c':1}}}}"),
        N("{'new':{'a':{'b':{'c':[1]}}}}", "{'new':{'a':{'b':{'c':2}}}}"),
        M("{'a':['1'],'b':['2']}", "{'a':'1','b':'2'}"),
        N("{'a':['1'],'b':['2']}", "{'a':'1'}"),
        N("{'a':['1'],'b':['2']}", "{'a':'1','b':'3'}"),
        M("{'a':['1']}", "{'a':'1','z':{'q':[1]}}"),
        /* a dotted key is a path (test_dotted_keys_*) */
        M("{'a.b':['1']}", "{'a':{'b':'1'}}"),
        M("{'a.b':['1']}", "{'a.b':'1'}"),
        M("{'table':['Messages'],'op':['insert'],"
          "'new':{'kind':['text',{'prefix':'image/'}]}}",
          "{'table':'Messages','op':'insert',"
          "'new':{'kind':'image/png','text':'hi'}}"),
        N("{'table':['Messages'],'op':['insert'],"
          "'new':{'kind':['text',{'prefix':'image/'}]}}",
          "{'table':'Messages','op':'modify','new':{'kind':'text'}}"),
        N("{'table':['Messages'],'op':['insert'],"
          "'new':{'kind':['text',{'prefix':'image/'}]}}",
          "{'table':'Messages','op':'insert','new':{'kind':'video/mp4'}}"),
    };

    (void)state;
    RUN(cases);
}

static void test_or_matches_any_alternative_at_its_level(void **state)
{
    static const struct match_case cases[] = {
        M("{'$or':[{'a':['1']},{'b':['2']}]}", "{'a':'1'}"),
        M("{'$or':[{'a':['1']},{'b':['2']}]}", "{'b':'2'}"),
        M("{'$or':[{'a':['1']},{'b':['2']}]}", "{'a':'1','b':'2'}"),
        N("{'$or':[{'a':['1']},{'b':['2']}]}", "{'a':'2','b':'1'}"),
        N("{'$or':[{'a':['1']},{'b':['2']}]}", "{}"),
        M("{'source':['cw'],'$or':[{'m':['cpu']},{'n':['ec2']}]}",
          "{'source':'cw','n':'ec2'}"),
        N("{'source':['cw'],'$or':[{'m':['cpu']},{'n':['ec2']}]}",
          "{'source':'x','n':'ec2'}"),
        N("{'source':['cw'],'$or':[{'m':['cpu']},{'n':['ec2']}]}",
          "{'source':'cw'}"),
        M("{'source':['cw'],'$or':[{'m':['cpu']},"
          "{'t':['T'],'$or':[{'id':[1]},{'sp':[2]}]}]}",
          "{'source':'cw','t':'T','sp':2}"),
        N("{'source':['cw'],'$or':[{'m':['cpu']},"
          "{'t':['T'],'$or':[{'id':[1]},{'sp':[2]}]}]}",
          "{'source':'cw','t':'T'}"),
        N("{'source':['cw'],'$or':[{'m':['cpu']},"
          "{'t':['T'],'$or':[{'id':[1]},{'sp':[2]}]}]}",
          "{'source':'cw','t':'X','sp':2}"),
        M("{'detail':{'$or':[{'s':['a']},{'d':['b']}]}}",
          "{'detail':{'d':'b'}}"),
        N("{'detail':{'$or':[{'s':['a']},{'d':['b']}]}}", "{'d':'b'}"),
        M("{'$or':[{'m':['cpu']},{'n':['ec2']}],"
          "'detail':{'$or':[{'s':['a']},{'d':['b']}]}}",
          "{'m':'cpu','detail':{'d':'b'}}"),
        N("{'$or':[{'m':['cpu']},{'n':['ec2']}],"
          "'detail':{'$or':[{'s':['a']},{'d':['b']}]}}",
          "{'m':'cpu','detail':{'d':'c'}}"),
        M("{'$or':[{'a':[false]},{'a':[{'exists':false}]}]}", "{}"),
        M("{'$or':[{'a':[false]},{'a':[{'exists':false}]}]}", "{'a':false}"),
        N("{'$or':[{'a':[false]},{'a':[{'exists':false}]}]}", "{'a':true}"),
        M("{'e':{'$or':[{'f':['Anna']},{'l':['Jones']}]}}",
          "{'e':[{'f':'X','l':'Y'},{'f':'Z','l':'Jones'}]}"),
        M("{'$or':[{'n':[{'numeric':['<',0]}]},{'n':[{'numeric':['>',9]}]},"
          "{'s':[{'prefix':'x'}]}]}",
          "{'n':4,'s':'xy'}"),
        N("{'$or':[{'n':[{'numeric':['<',0]}]},{'n':[{'numeric':['>',9]}]},"
          "{'s':[{'prefix':'x'}]}]}",
          "{'n':4,'s':'yx'}"),
        M("{'new':{'$or':[{'kind':['text']},{'media':{'type':['image']}}]}}",
          "{'new':{'kind':'photo','media':{'type':'image'}}}"),
    };

    (void)state;
    RUN(cases);
}

static void test_dotted_keys_are_paths_through_nested_objects(void **state)
{
    static const struct match_case cases[] = {
        /* the example, as event-ruler's flattening reads it */
        M("{'name':['test'],'properties.foo':[{'wildcard':'*bar*'}]}",
          "{'name':'test','properties':{'foo':'foobar'}}"),
        N("{'name':['test'],'properties.foo':[{'wildcard':'*bar*'}]}",
          "{'name':'test','properties':{'foo':'foobaz'}}"),
        N("{'name':['test'],'properties.foo':[{'wildcard':'*bar*'}]}",
          "{'name':'test'}"),
        N("{'name':['test'],'properties.foo':[{'wildcard':'*bar*'}]}",
          "{'name':'test','properties':'foobar'}"),
        M("{'a.b.c':[1]}", "{'a':{'b':{'c':1}}}"),
        N("{'a.b.c':[1]}", "{'a':{'b':{'c':2}}}"),
        N("{'a.b.c':[1]}", "{'a':{'c':1}}"),
        /* the same as the nested spelling, inside nested patterns too */
        M("{'new':{'media.type':['image']}}",
          "{'new':{'media':{'type':'image'}}}"),
        M("{'new.media':{'type':['image']}}",
          "{'new':{'media':{'type':'image'}}}"),
        /* arrays along the way: any element, as for nested patterns */
        M("{'a.b':['x']}", "{'a':[{'b':'y'},{'b':'x'}]}"),
        M("{'a.b.c':[1]}", "{'a':[{'b':[{'c':2},{'c':1}]}]}"),
        N("{'a.b':['x']}", "{'a':[{'b':'y'},{'c':'x'}]}"),
        /* exists looks along the path */
        M("{'a.b':[{'exists':true}]}", "{'a':{'b':null}}"),
        N("{'a.b':[{'exists':true}]}", "{'a':{'c':1}}"),
        M("{'a.b':[{'exists':false}]}", "{'a':{'c':1}}"),
        M("{'a.b':[{'exists':false}]}", "{}"),
        N("{'a.b':[{'exists':false}]}", "{'a':{'b':1}}"),
        N("{'a.b':[{'exists':false}]}", "{'a.b':1}"),
        /* in $or alternatives */
        M("{'$or':[{'a.b':[1]},{'c':[2]}]}", "{'a':{'b':1}}"),
        N("{'$or':[{'a.b':[1]},{'c':[2]}]}", "{'a':{'b':2}}"),
        /* every dot splits: an empty segment is an empty key; "$or" after
         * a dot is a field name */
        M("{'a..b':[1]}", "{'a':{'':{'b':1}}}"),
        M("{'x.$or':[1]}", "{'x':{'$or':1}}"),
    };

    (void)state;
    RUN(cases);
}

static void test_dotted_and_nested_spellings_merge_into_one_level(void **state)
{
    static const struct match_case cases[] = {
        /* both constrain fields of the same object "a" */
        M("{'a.b':['1'],'a':{'c':['2']}}", "{'a':{'b':'1','c':'2'}}"),
        N("{'a.b':['1'],'a':{'c':['2']}}", "{'a':{'b':'1'}}"),
        N("{'a.b':['1'],'a':{'c':['2']}}", "{'a':{'c':'2'}}"),
        M("{'a':{'c':['2']},'a.b':['1']}", "{'a':{'b':'1','c':'2'}}"),
        /* one level, so one array element must match both, as for
         * {'a':{'b':['1'],'c':['2']}} */
        N("{'a.b':['1'],'a':{'c':['2']}}", "{'a':[{'b':'1'},{'c':'2'}]}"),
        N("{'a':{'b':['1'],'c':['2']}}", "{'a':[{'b':'1'},{'c':'2'}]}"),
        M("{'a.b':['1'],'a':{'c':['2']}}",
          "{'a':[{'b':'1'},{'b':'1','c':'2'}]}"),
        M("{'a.b.c':[1],'a.b.d':[2],'a':{'b':{'e':[3]}}}",
          "{'a':{'b':{'c':1,'d':2,'e':3}}}"),
        N("{'a.b.c':[1],'a.b.d':[2],'a':{'b':{'e':[3]}}}",
          "{'a':{'b':{'c':1,'d':2}}}"),
        /* a field may be a leaf and a nested level at once */
        M("{'a.b':[1],'a':{'b':{'c':[2]}}}", "{'a':{'b':[1,{'c':2}]}}"),
        N("{'a.b':[1],'a':{'b':{'c':[2]}}}", "{'a':{'b':1}}"),
        /* $or at the level a dotted key reaches */
        M("{'a.b':[1],'a':{'$or':[{'c':[2]},{'d':[3]}]}}",
          "{'a':{'b':1,'d':3}}"),
        N("{'a.b':[1],'a':{'$or':[{'c':[2]},{'d':[3]}]}}",
          "{'a':{'b':1,'d':4}}"),
    };

    (void)state;
    RUN(cases);
}

static void test_dotted_keys_also_match_dotted_document_keys(void **state)
{
    static const struct match_case cases[] = {
        /* a key written with dots matches every spelling of its path that
         * event-ruler flattens to the same name */
        M("{'a.b':['1']}", "{'a.b':'1'}"),
        N("{'a.b':['1']}", "{'a.b':'2'}"),
        M("{'a.b.c':[1]}", "{'a.b.c':1}"),
        M("{'a.b.c':[1]}", "{'a.b':{'c':1}}"),
        M("{'a.b.c':[1]}", "{'a':{'b.c':1}}"),
        M("{'a.b.c':[1]}", "{'a.b':[{'c':2},{'c':1}]}"),
        M("{'a.b':{'c':[1]}}", "{'a.b':{'c':1}}"),
        M("{'properties.foo':[{'wildcard':'*bar*'}]}",
          "{'properties.foo':'foobar'}"),
        /* both spellings at once: either may hold the value */
        M("{'a.b':['1']}", "{'a.b':'2','a':{'b':'1'}}"),
        M("{'a.b':['1']}", "{'a.b':'1','a':{'b':'2'}}"),
        N("{'a.b':[{'anything-but':'1'}]}", "{'a.b':'1','a':{'b':'1'}}"),
        /* fields of one level may come from different spellings: they
         * are different flattened fields ("a.b" and "a.c") */
        M("{'a.b':['1'],'a':{'c':['2']}}", "{'a.b':'1','a':{'c':'2'}}"),
        /* a dotted key inside a nested pattern: dotted from its own level
         * only */
        M("{'new':{'a.b':[1]}}", "{'new':{'a.b':1}}"),
        M("{'new':{'a.b':[1]}}", "{'new':{'a':{'b':1}}}"),
        N("{'new':{'a.b':[1]}}", "{'new.a':{'b':1}}"),
        N("{'new':{'a.b':[1]}}", "{'new.a.b':1}"),
        /* deliberate difference: a path written as nested objects matches
         * nested objects only (event-ruler would match these too) */
        N("{'a':{'b':['1']}}", "{'a.b':'1'}"),
        N("{'new':{'kind':['text']}}", "{'new.kind':'text'}"),
    };

    (void)state;
    RUN(cases);
}

static void test_or_alternative_overrides_the_same_field_outside(void **state)
{
    /* the example: event-ruler reads it as {'name': anything but
     * 'a'} OR {'name': ['a','b'], 'condition1': ['x']} */
#define OR_OVERRIDE                                             \
    "{'name':['a','b'],'$or':[{'name':[{'anything-but':'a'}]}," \
    "{'condition1':['x']}]}"
    static const struct match_case cases[] = {
        M(OR_OVERRIDE, "{'name':'c'}"),
        M(OR_OVERRIDE, "{'name':'b'}"),
        N(OR_OVERRIDE, "{'name':'a'}"),
        M(OR_OVERRIDE, "{'name':'a','condition1':'x'}"),
        N(OR_OVERRIDE, "{'name':'a','condition1':'y'}"),
        N(OR_OVERRIDE, "{'condition1':'x'}"),
        /* fields no alternative names still apply to every alternative */
        N("{'t':['T'],'name':['a'],'$or':[{'name':['b']},{'c':[1]}]}",
          "{'name':'b'}"),
        M("{'t':['T'],'name':['a'],'$or':[{'name':['b']},{'c':[1]}]}",
          "{'t':'T','name':'b'}"),
        M("{'t':['T'],'name':['a'],'$or':[{'name':['b']},{'c':[1]}]}",
          "{'t':'T','name':'a','c':1}"),
        N("{'t':['T'],'name':['a'],'$or':[{'name':['b']},{'c':[1]}]}",
          "{'t':'T','name':'c','c':1}"),
        /* the override is per flattened field: a.b is replaced, a.d
         * stays */
        M("{'a':{'b':[1],'d':[4]},'$or':[{'a':{'b':[2]}},{'c':[3]}]}",
          "{'a':{'b':2,'d':4}}"),
        N("{'a':{'b':[1],'d':[4]},'$or':[{'a':{'b':[2]}},{'c':[3]}]}",
          "{'a':{'b':2}}"),
        N("{'a':{'b':[1],'d':[4]},'$or':[{'a':{'b':[2]}},{'c':[3]}]}",
          "{'a':{'b':1,'d':4}}"),
        M("{'a':{'b':[1],'d':[4]},'$or':[{'a':{'b':[2]}},{'c':[3]}]}",
          "{'a':{'b':1,'d':4},'c':3}"),
        M("{'a.b':[1],'$or':[{'a':{'b':[2]}},{'c':[3]}]}", "{'a':{'b':2}}"),
        N("{'a.b':[1],'$or':[{'a':{'b':[2]}},{'c':[3]}]}", "{'a':{'b':1}}"),
        M("{'a.b':[1],'$or':[{'a.b':[2]},{'c':[3]}]}", "{'a':{'b':2}}"),
        /* inside a nested object */
        M("{'detail':{'s':['a'],'$or':[{'s':['b']},{'d':['c']}]}}",
          "{'detail':{'s':'b'}}"),
        M("{'detail':{'s':['a'],'$or':[{'s':['b']},{'d':['c']}]}}",
          "{'detail':{'s':'a','d':'c'}}"),
        N("{'detail':{'s':['a'],'$or':[{'s':['b']},{'d':['c']}]}}",
          "{'detail':{'s':'a'}}"),
        /* the innermost alternative wins */
        M("{'f':['x'],'$or':[{'g':[1],'$or':[{'f':['y']},{'h':[2]}]},"
          "{'k':[3]}]}",
          "{'f':'y','g':1}"),
        N("{'f':['x'],'$or':[{'g':[1],'$or':[{'f':['y']},{'h':[2]}]},"
          "{'k':[3]}]}",
          "{'f':'x','g':1}"),
        M("{'f':['x'],'$or':[{'g':[1],'$or':[{'f':['y']},{'h':[2]}]},"
          "{'k':[3]}]}",
          "{'f':'x','g':1,'h':2}"),
        M("{'f':['x'],'$or':[{'g':[1],'$or':[{'f':['y']},{'h':[2]}]},"
          "{'k':[3]}]}",
          "{'f':'x','k':3}"),
        N("{'f':['x'],'$or':[{'g':[1],'$or':[{'f':['y']},{'h':[2]}]},"
          "{'k':[3]}]}",
          "{'f':'y','k':3}"),
        /* a $or inside an outer field combines with an alternative that
         * names other fields of that object */
        M("{'a':{'$or':[{'b':[1]},{'c':[1]}]},"
          "'$or':[{'a':{'d':[2]}},{'k':[1]}]}",
          "{'a':{'c':1,'d':2}}"),
        N("{'a':{'$or':[{'b':[1]},{'c':[1]}]},"
          "'$or':[{'a':{'d':[2]}},{'k':[1]}]}",
          "{'a':{'d':2}}"),
        M("{'a':{'$or':[{'b':[1]},{'c':[1]}]},"
          "'$or':[{'a':{'d':[2]}},{'k':[1]}]}",
          "{'a':{'b':1},'k':1}"),
        /* exists: false outside, a value inside */
        M("{'f':[{'exists':false}],'$or':[{'f':['x']},{'g':[1]}]}",
          "{'f':'x'}"),
        M("{'f':[{'exists':false}],'$or':[{'f':['x']},{'g':[1]}]}", "{'g':1}"),
        N("{'f':[{'exists':false}],'$or':[{'f':['x']},{'g':[1]}]}",
          "{'f':'y','g':1}"),
    };

    (void)state;
    RUN(cases);
#undef OR_OVERRIDE
}

static void test_anything_but_takes_lists_of_prefixes_and_suffixes(void **state)
{
    static const struct match_case cases[] = {
        /* the example */
        M("{'a':[{'anything-but':{'prefix':['$','%']}}]}", "{'a':'value$'}"),
        N("{'a':[{'anything-but':{'prefix':['$','%']}}]}", "{'a':'$value'}"),
        N("{'a':[{'anything-but':{'prefix':['$','%']}}]}", "{'a':'%value'}"),
        M("{'a':[{'anything-but':{'prefix':['$','%']}}]}", "{'a':''}"),
        M("{'a':[{'anything-but':{'prefix':['$','%']}}]}", "{'a':5}"),
        M("{'a':[{'anything-but':{'prefix':['$','%']}}]}", "{'a':null}"),
        N("{'a':[{'anything-but':{'prefix':['$','%']}}]}", "{}"),
        M("{'a':[{'anything-but':{'prefix':['$','%']}}]}", "{'a':['$x','y']}"),
        N("{'a':[{'anything-but':{'prefix':['$','%']}}]}", "{'a':['$x','%y']}"),
        M("{'a':[{'anything-but':{'prefix':['init']}}]}", "{'a':'run'}"),
        N("{'a':[{'anything-but':{'prefix':['init']}}]}", "{'a':'initial'}"),
        M("{'a':[{'anything-but':{'suffix':['.png','.jpg']}}]}",
          "{'a':'x.gif'}"),
        N("{'a':[{'anything-but':{'suffix':['.png','.jpg']}}]}",
          "{'a':'x.jpg'}"),
        N("{'a':[{'anything-but':{'suffix':['.png','.jpg']}}]}",
          "{'a':'.png'}"),
        M("{'a':[{'anything-but':{'suffix':['.png','.jpg']}}]}",
          "{'a':'x.PNG'}"),
        /* equals-ignore-case and wildcard take lists too */
        N("{'a':[{'anything-but':{'equals-ignore-case':['x','Y']}}]}",
          "{'a':'y'}"),
        M("{'a':[{'anything-but':{'wildcard':['*.png','a*']}}]}",
          "{'a':'b.jpg'}"),
        N("{'a':[{'anything-but':{'wildcard':['*.png','a*']}}]}",
          "{'a':'ab.jpg'}"),
    };

    (void)state;
    RUN(cases);
}

static void test_numbers_beyond_the_normal_range_still_match(void **state)
{
    /* full double range: what jansson parses and is not an underflow */
    static const struct match_case cases[] = {
        M("{'a':[{'numeric':['>',1e300]}]}", "{'a':1e301}"),
        M("{'a':[{'numeric':['<',-1e300]}]}", "{'a':-1e308}"),
        M("{'a':[{'numeric':['>',0,'<',1e-300]}]}", "{'a':1e-301}"),
        M("{'a':[2.2250738585072014e-308]}", "{'a':2.2250738585072014e-308}"),
        M("{'a':[{'anything-but':[1e-7]}]}", "{'a':0}"),
        M("{'a':[0]}", "{'a':0.0}"),
        M("{'a':[{'numeric':['=',0]}]}", "{'a':1e-325}"),
    };

    (void)state;
    RUN(cases);
}

static void
test_numbers_jansson_cannot_hold_never_reach_the_compiler(void **state)
{
    /* 1E400 and integers past int64 fail to parse, so the config loader
     * reports them with their line; infinities cannot be built either */
    static const char *const texts[] = {
        "{\"a\":[{\"numeric\":[\"=\",1E400]}]}",
        "{\"a\":[-1e400]}",
        "{\"a\":[{\"anything-but\":[99999999999999999999]}]}",
    };
    json_error_t err;
    size_t i;

    (void)state;
    for (i = 0; i < HR_ARRAY_SIZE(texts); i++)
        assert_null(json_loads(texts[i], 0, &err));
    assert_null(json_real(INFINITY));
    assert_null(json_real(NAN));
}

static void test_cidr_matches_addresses_in_the_network(void **state)
{
    static const struct match_case cases[] = {
        M("{'ip':[{'cidr':'10.0.0.0/24'}]}", "{'ip':'10.0.0.33'}"),
        N("{'ip':[{'cidr':'10.0.0.0/24'}]}", "{'ip':'10.0.1.1'}"),
        N("{'ip':[{'cidr':'10.0.0.0/24'}]}", "{'ip':'x'}"),
        N("{'ip':[{'cidr':'10.0.0.0/24'}]}", "{'ip':10}"),
        M("{'ip':[{'cidr':'10.0.0.0/8'}]}", "{'ip':'10.255.255.255'}"),
        N("{'ip':[{'cidr':'10.0.0.0/8'}]}", "{'ip':'11.0.0.0'}"),
        M("{'ip':[{'cidr':'172.16.0.0/12'}]}", "{'ip':'172.31.255.255'}"),
        N("{'ip':[{'cidr':'172.16.0.0/12'}]}", "{'ip':'172.32.0.0'}"),
        M("{'ip':[{'cidr':'0.0.0.0/0'}]}", "{'ip':'1.2.3.4'}"),
        M("{'ip':[{'cidr':'2001:db8::/32'}]}", "{'ip':'2001:db8::1'}"),
        N("{'ip':[{'cidr':'2001:db8::/32'}]}", "{'ip':'2001:db9::1'}"),
        N("{'ip':[{'cidr':'2001:db8::/32'}]}", "{'ip':'10.0.0.1'}"),
    };

    (void)state;
    RUN(cases);
}

static void test_invalid_patterns_are_rejected_naming_the_path(void **state)
{
    static const struct invalid_case cases[] = {
        {"[]", "(root): pattern must be a JSON object"},
        {"'x'", "(root): pattern must be a JSON object"},
        {"{}", "(root): empty object is not allowed"},
        {"{'a':[]}", "a: empty array is not allowed"},
        {"{'a':'x'}", "a: must be an array of values or an object"},
        {"{'a':5}", "a: must be an array of values or an object, not a num"},
        {"{'a':{}}", "a: empty object is not allowed"},
        {"{'a':{'prefix':'x'}}", "a.prefix: must be an array or an object "
                                 "(operators go inside the array"},
        {"{'a':[['x']]}", "a[0]: nested arrays are not allowed"},
        {"{'new':{'kind':['text',{'prefx':'image/'}]}}",
         "new.kind[1]: unknown operator 'prefx'"},
        {"{'a':[{}]}", "a[0]: empty operator object"},
        {"{'a':[{'prefix':'x','suffix':'y'}]}",
         "a[0]: only one operator allowed per object"},
        {"{'a':[{'prefix':5}]}", "a[0]: prefix needs a string"},
        {"{'a':[{'prefix':{'equals-ignore-case':5}}]}",
         "a[0]: prefix needs a string or {\"equals-ignore-case\""},
        {"{'a':[{'prefix':{'wildcard':'x'}}]}", "a[0]: prefix needs"},
        {"{'a':[{'suffix':null}]}", "a[0]: suffix needs a string"},
        {"{'a':[{'equals-ignore-case':['x']}]}",
         "a[0]: equals-ignore-case needs a string"},
        {"{'a':[{'wildcard':'a**b'}]}", "a[0]: consecutive '*' in wildcard"},
        {"{'a':[{'wildcard':'a\\\\xb'}]}", "a[0]: invalid escape in wildcard"},
        {"{'a':[{'wildcard':'ab\\\\'}]}", "a[0]: invalid escape in wildcard"},
        {"{'a':[{'wildcard':5}]}", "a[0]: wildcard needs a string"},
        {"{'new':{'size':[{'numeric':'>5'}]}}",
         "new.size[0]: numeric needs an operator and a number"},
        {"{'a':[{'numeric':['>']}]}", "numeric needs an operator and a number"},
        {"{'a':[{'numeric':['>','5']}]}",
         "numeric needs an operator and a number"},
        {"{'a':[{'numeric':[5,'>']}]}",
         "numeric needs an operator and a number"},
        {"{'a':[{'numeric':['=>',5]}]}", "unknown numeric operator '=>'"},
        {"{'a':[{'numeric':['=',5,'<',6]}]}",
         "numeric '=' takes exactly one number"},
        {"{'a':[{'numeric':['<',5,'>',0]}]}",
         "numeric range must give the lower bound first"},
        {"{'a':[{'numeric':['>',5,'<',5]}]}", "numeric range is empty"},
        {"{'a':[{'numeric':['>=',5,'<=',1]}]}", "numeric range is empty"},
        {"{'a':[{'numeric':['>',0,'>',5]}]}",
         "numeric range needs '<' or '<=' after the lower bound"},
        {"{'a':[{'numeric':['>',0,'<']}]}", "numeric has 3 elements"},
        {"{'a':[{'numeric':['>',0,'<',9,'<',10]}]}", "numeric has 6 elements"},
        {"{'a':[{'numeric':['>',0,'<','9']}]}", "numeric '<' needs a number"},
        {"{'a':[{'exists':'true'}]}", "a[0]: exists needs true or false"},
        {"{'a':[{'anything-but':null}]}", "anything-but needs a string"},
        {"{'a':[{'anything-but':true}]}", "anything-but needs a string"},
        {"{'a':[{'anything-but':[]}]}", "anything-but list must be non-empty"},
        {"{'a':[{'anything-but':['x',1]}]}", "only strings or only numbers"},
        {"{'a':[{'anything-but':[null]}]}", "only strings or only numbers"},
        {"{'a':[{'anything-but':{'prefix':''}}]}",
         "anything-but prefix needs a non-empty string"},
        {"{'a':[{'anything-but':{'suffix':5}}]}",
         "anything-but suffix needs a non-empty string"},
        {"{'a':[{'anything-but':{'numeric':['>',1]}}]}",
         "unsupported anything-but operator 'numeric'"},
        {"{'a':[{'anything-but':{'prefix':'a','suffix':'b'}}]}",
         "anything-but takes exactly one operator"},
        {"{'a':[{'anything-but':{'equals-ignore-case':[]}}]}",
         "anything-but equals-ignore-case needs a string or a non-empty list"},
        {"{'a':[{'anything-but':{'wildcard':'a**'}}]}",
         "consecutive '*' in wildcard"},
        {"{'a':[{'anything-but':{'wildcard':[1]}}]}",
         "anything-but wildcard needs a string"},
        {"{'$or':[{'a':['1']}]}",
         "$or: $or needs an array of at least 2 patterns"},
        {"{'$or':{'a':['1']}}", "$or needs an array of at least 2 patterns"},
        {"{'$or':[{'a':['1']},'b']}", "$or[1]: $or alternatives must be "
                                      "objects"},
        {"{'$or':[{'a':['1']},{}]}", "$or[1]: empty object is not allowed"},
        {"{'$or':[{'prefix':['1']},{'b':['2']}]}",
         "$or[0].prefix: operator name 'prefix' cannot be a field name"},
        {"{'$or':[{'x':{'numeric':[1]}},{'b':['2']}]}",
         "$or[0].x.numeric: operator name 'numeric'"},
        {"{'x':{'$or':[{'a':[]},{'b':['2']}]}}",
         "x.$or[0].a: empty array is not allowed"},
        {"{'a':[{'cidr':'10.0.0.0'}]}", "a[0]: invalid cidr '10.0.0.0'"},
        {"{'a':[{'cidr':'10.0.0.0/33'}]}", "invalid cidr"},
        {"{'a':[{'cidr':'10.0.0/8'}]}", "invalid cidr"},
        {"{'a':[{'cidr':5}]}", "a[0]: cidr needs a string"},
        {"{'new':{'kind':[{'prefix':'x'},{'anything-but':{'prefix':'y','x':1}}"
         "]}}",
         "new.kind[1]: anything-but takes exactly one operator"},
        /* errors name what was given */
        {"[]", "(root): pattern must be a JSON object, got an empty list"},
        {"{'a':[{'anything-but':{'prefix':{'x':1}}}]}",
         "a[0]: anything-but prefix needs a non-empty string or a non-empty "
         "list of them, got an object"},
        {"{'a':[{'anything-but':{'prefix':[]}}]}",
         "anything-but prefix needs a non-empty string or a non-empty list "
         "of them, got an empty list"},
        {"{'a':[{'anything-but':{'prefix':''}}]}",
         "anything-but prefix needs a non-empty string or a non-empty list "
         "of them, got an empty string"},
        {"{'a':[{'anything-but':{'suffix':['x','']}}]}",
         "anything-but suffix needs a non-empty string or a non-empty list "
         "of them, got a list holding an empty string at [1]"},
        {"{'a':[{'anything-but':{'suffix':['x',5]}}]}",
         "got a list holding a number at [1]"},
        {"{'a':[{'anything-but':{'suffix':true}}]}", "got true"},
        {"{'a':[{'prefix':5}]}",
         "a[0]: prefix needs a string or {\"equals-ignore-case\": string}, "
         "got a number"},
        {"{'a':[{'suffix':{'equals-ignore-case':['x']}}]}",
         "got {\"equals-ignore-case\": a list}"},
        {"{'a':[{'prefix':{'wildcard':'x'}}]}", "got {\"wildcard\": ...}"},
        {"{'a':[{'equals-ignore-case':['x']}]}",
         "equals-ignore-case needs a string, got a list"},
        {"{'a':[{'wildcard':5}]}", "wildcard needs a string, got a number"},
        {"{'a':[{'anything-but':{'wildcard':[1]}}]}",
         "anything-but wildcard needs a string or a non-empty list of "
         "strings, got a list holding a number at [0]"},
        {"{'a':[{'anything-but':{'equals-ignore-case':{}}}]}",
         "got an empty object"},
        {"{'a':[{'exists':'true'}]}",
         "exists needs true or false, got a string"},
        {"{'a':[{'numeric':'>5'}]}", "got a string"},
        {"{'a':[{'numeric':[5,'>']}]}",
         "got a list of 2 starting with a number"},
        {"{'a':[{'numeric':['>',0,'<',null]}]}",
         "numeric '<' needs a number, got null"},
        {"{'a':[{'cidr':5}]}", "cidr needs a string like '10.0.0.0/24', got "
                               "a number"},
        {"{'a':[{'anything-but':null}]}", "got null"},
        {"{'a':[{'anything-but':{}}]}", "anything-but takes exactly one "
                                        "operator, got 0"},
        {"{'a':[{'anything-but':[null]}]}", "got null at [0]"},
        {"{'a':[{'anything-but':['x',1]}]}", "got strings and numbers"},
        {"{'a':[{'anything-but':{'numeric':['>',1]}}]}",
         "unsupported anything-but operator 'numeric' (prefix, suffix, "
         "equals-ignore-case, wildcard)"},
        {"{'$or':{'a':['1']}}", "$or needs an array of at least 2 patterns, "
                                "got an object"},
        {"{'$or':[{'a':['1']}]}", "got a list of 1"},
        {"{'$or':[{'a':['1']},'b']}", "$or alternatives must be objects, got "
                                      "a string"},
        {"{'a':true}", "a: must be an array of values or an object, not true"},
        /* numbers event-ruler cannot represent (jansson reads 1E-325 as
         * 0.0, which is why a decimal zero must be written 0) */
        {"{'a':[{'numeric':['=',1E-325]}]}",
         "a[0]: number reads as 0.0: write zero as 0"},
        {"{'a':[{'numeric':['=',1E-325]}]}", "such as 1E-325"},
        {"{'a':[{'numeric':['>',0,'<=',1E-325]}]}",
         "a[0]: number reads as 0.0"},
        {"{'a':[1E-325]}", "a[0]: number reads as 0.0"},
        {"{'a':[{'anything-but':1E-325}]}", "a[0]: number reads as 0.0"},
        {"{'a':[{'anything-but':[1,1E-325]}]}", "a[0][1]: number reads as 0.0"},
        {"{'a':[0.0]}", "write zero as 0"},
        {"{'a':[-0.0]}", "write zero as 0"},
        {"{'a':[{'numeric':['>',1E-310]}]}",
         "a[0]: number 1e-310 is too small to represent exactly"},
        {"{'a':[-4.9e-324]}", "is too small to represent exactly"},
        /* the same field through a dotted key and a nested object */
        {"{'a.b':[1],'a':{'b':[2]}}",
         "a.b: field 'a.b' is given twice (a dotted key and a nested "
         "object name the same field)"},
        {"{'a':{'b':[2]},'a.b':[1]}", "a.b: field 'a.b' is given twice"},
        {"{'x':{'a.b':[1],'a':{'b':[2]}}}", "x.a.b: field 'x.a.b' is given "
                                            "twice"},
        {"{'$or':[{'a.b':[1],'a':{'b':[2]}},{'c':[1]}]}",
         "$or[0].a.b: field 'a.b' is given twice"},
        {"{'a.b':{'$or':[{'x':[1]},{'y':[2]}]},"
         "'a':{'b':{'$or':[{'z':[1]},{'w':[2]}]}}}",
         "a.b.$or: $or is given twice for the same object"},
        {"{'d':{'$or':[{'x':[1]},{'y':[2]}]},"
         "'$or':[{'d':{'$or':[{'z':[1]},{'w':[2]}]}},{'k':[1]}]}",
         "d: a $or inside this object outside a $or alternative meets the "
         "alternative's own $or or fields here; which one overrides is "
         "ambiguous"},
        {"{'a':{'$or':[{'b':[1]},{'c':[1]}]},"
         "'$or':[{'a':{'b':[2]}},{'k':[1]}]}",
         "a: a $or inside this object outside a $or alternative meets"},
        {"{'a.prefix':'x'}", "a.prefix: must be an array or an object "
                             "(operators go inside the array"},
        {"{'a.b':[]}", "a.b: empty array is not allowed"},
        {"{'a.b':{}}", "a.b: empty object is not allowed"},
        {"{'a.b':[{'prefx':1}]}", "a.b[0]: unknown operator 'prefx'"},
    };
    size_t i, failures = 0;

    (void)state;
    for (i = 0; i < HR_ARRAY_SIZE(cases); i++) {
        char errstr[256] = "";
        json_t *pattern = load(cases[i].pattern);
        struct fanout_pattern *p;

        p = fanout_pattern_compile(pattern, errstr, sizeof(errstr));
        if (p) {
            print_error("invalid[%zu]: pattern %s compiled; expected '%s'\n", i,
                        cases[i].pattern, cases[i].error);
            failures++;
        } else if (!strstr(errstr, cases[i].error)) {
            print_error("invalid[%zu]: pattern %s: error '%s' lacks '%s'\n", i,
                        cases[i].pattern, errstr, cases[i].error);
            failures++;
        }
        fanout_pattern_free(p);
        json_decref(pattern);
    }
    n_invalid_cases += HR_ARRAY_SIZE(cases);
    assert_int_equal(failures, 0);
}

static void test_compiled_pattern_outlives_its_json(void **state)
{
    char errstr[64] = "untouched";
    json_t *pattern = load("{'new':{'kind':['text',{'prefix':'image/'}],"
                           "'n':[{'anything-but':['a','b']}]}}");
    json_t *doc = load("{'new':{'kind':'image/png','n':'c'}}");
    struct fanout_pattern *p;

    (void)state;
    p = fanout_pattern_compile(pattern, errstr, sizeof(errstr));
    assert_non_null(p);
    /* errstr is written only on failure */
    assert_string_equal(errstr, "untouched");
    json_decref(pattern);
    assert_true(fanout_pattern_match(p, doc));
    fanout_pattern_free(p);
    json_decref(doc);
}

static void test_non_object_document_has_no_fields(void **state)
{
    char errstr[64];
    json_t *pattern = load("{'a':[{'exists':false}]}");
    json_t *pattern2 = load("{'a':[{'exists':true}]}");
    json_t *doc = load("[{'a':1}]");
    struct fanout_pattern *p, *p2;

    (void)state;
    p = fanout_pattern_compile(pattern, errstr, sizeof(errstr));
    p2 = fanout_pattern_compile(pattern2, errstr, sizeof(errstr));
    assert_non_null(p);
    assert_non_null(p2);
    assert_true(fanout_pattern_match(p, doc));
    assert_false(fanout_pattern_match(p2, doc));
    assert_true(fanout_pattern_match(p, json_null()));
    fanout_pattern_free(p);
    fanout_pattern_free(p2);
    json_decref(pattern);
    json_decref(pattern2);
    json_decref(doc);
}

static void test_error_fits_a_small_buffer(void **state)
{
    char errstr[8];
    json_t *pattern = load("{'new':{'kind':[{'prefx':'x'}]}}");

    (void)state;
    memset(errstr, 'x', sizeof(errstr));
    assert_null(fanout_pattern_compile(pattern, errstr, sizeof(errstr)));
    assert_int_equal(strlen(errstr), sizeof(errstr) - 1);
    assert_memory_equal(errstr, "new.kin", 7);
    json_decref(pattern);
}

static void test_long_paths_are_cut_in_messages(void **state)
{
    char key[200], text[1024], errstr[512];
    json_t *pattern;

    (void)state;
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    snprintf(text, sizeof(text), "{'%s':{'%s':{'x':[{'bad':1}]}}}", key, key);
    pattern = load(text);
    assert_null(fanout_pattern_compile(pattern, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, ": unknown operator 'bad'"));
    json_decref(pattern);
}

static void test_free_null_is_a_no_op(void **state)
{
    (void)state;
    fanout_pattern_free(NULL);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* ---- benchmark -------------------------------------------------------- */

/*
 * Documents per second through every match.pattern of the example rule set
 * (workers/fanout/examples/chat-rules.json), engine only: no parsing, no
 * table/op checks, one core. Run it on an optimized build:
 *
 *   cmake --build build/release --target unit_test_fanout_pattern
 *   HERALD_FANOUT_PATTERN_BENCH=1 build/release/bin/unit_test_fanout_pattern
 *
 * The documents are normalized change documents (fanout_normalize.h) for
 * the tables the rules name and a few they do not, as DynamoDB and
 * Debezium produce them.
 */
static const char *const bench_docs[] = {
    "{'id':'ddb-1','op':'insert','table':'Messages',"
    "'keys':{'conversation_id':'c1','message_id':'m1'},"
    "'new':{'conversation_id':'c1','message_id':'m1','sender_id':'u0',"
    "'sender_name':'Ada','recipient_ids':['u1','u2','u3'],"
    "'created_at':'2025-11-22T00:00:00Z','text':'hello there','kind':'text',"
    "'edited':false,'size':11},"
    "'changed':['conversation_id','message_id','sender_id','sender_name',"
    "'recipient_ids','created_at','text','kind','edited','size'],"
    "'ts_ms':1763769600000,'source':{'format':'dynamodb',"
    "'arn':'arn:aws:dynamodb:eu-west-1:1:table/Messages/stream/x'}}",
    "{'id':'ddb-2','op':'insert','table':'Messages',"
    "'keys':{'conversation_id':'c1','message_id':'m2'},"
    "'new':{'conversation_id':'c1','message_id':'m2','sender_id':'u1',"
    "'sender_name':'Bo','recipient_ids':['u0'],"
    "'created_at':'2025-11-22T00:00:01Z','text':'','kind':'image/png',"
    "'media':{'url':'s3://b/k.png','width':640,'height':480}},"
    "'changed':['conversation_id','message_id','sender_id','sender_name',"
    "'recipient_ids','created_at','text','kind','media'],"
    "'ts_ms':1763769601000,'source':{'format':'dynamodb'}}",
    "{'id':'ddb-3','op':'insert','table':'Messages',"
    "'keys':{'conversation_id':'c2','message_id':'m3'},"
    "'new':{'conversation_id':'c2','message_id':'m3','sender_id':'u2',"
    "'recipient_ids':['u0','u1'],'kind':'video/mp4','text':'clip'},"
    "'changed':['conversation_id','message_id','sender_id',"
    "'recipient_ids','kind','text'],"
    "'ts_ms':1763769602000,'source':{'format':'dynamodb'}}",
    "{'id':'ddb-4','op':'modify','table':'Messages',"
    "'keys':{'conversation_id':'c1','message_id':'m1'},"
    "'new':{'conversation_id':'c1','message_id':'m1','sender_id':'u0',"
    "'text':'hello there!','kind':'text','edited':true},"
    "'old':{'conversation_id':'c1','message_id':'m1','sender_id':'u0',"
    "'text':'hello there','kind':'text','edited':false},"
    "'changed':['text','edited'],"
    "'ts_ms':1763769603000,'source':{'format':'dynamodb'}}",
    "{'id':'ddb-5','op':'modify','table':'ReadReceipts',"
    "'keys':{'conversation_id':'c1','user_id':'u1'},"
    "'new':{'conversation_id':'c1','user_id':'u1',"
    "'read_at':'2025-11-22T00:01:00Z','last_message_id':'m2'},"
    "'old':{'conversation_id':'c1','user_id':'u1','last_message_id':'m1'},"
    "'changed':['read_at','last_message_id'],"
    "'ts_ms':1763769660000,'source':{'format':'dynamodb'}}",
    "{'id':'ddb-6','op':'insert','table':'ReadReceipts',"
    "'keys':{'conversation_id':'c2','user_id':'u2'},"
    "'new':{'conversation_id':'c2','user_id':'u2'},"
    "'changed':['conversation_id','user_id'],"
    "'ts_ms':1763769661000,'source':{'format':'dynamodb'}}",
    "{'id':'0/16B3748:1a2b3c','op':'insert','table':'Comments',"
    "'keys':{'comment_id':77},"
    "'new':{'comment_id':77,'post_id':12,'author_id':'u3',"
    "'author_name':'Cy','post_author_id':'u0','post_title':'Launch',"
    "'text':'congrats','created_at':'2025-11-22T00:02:00Z'},"
    "'changed':['comment_id','post_id','author_id','author_name',"
    "'post_author_id','post_title','text','created_at'],"
    "'ts_ms':1763769720000,'source':{'format':'debezium',"
    "'connector':'postgresql','db':'chat','schema':'public',"
    "'lsn':24023128}}",
    "{'id':'ddb-8','op':'insert','table':'Reactions',"
    "'keys':{'message_id':'m1','user_id':'u2'},"
    "'new':{'message_id':'m1','user_id':'u2','reactor_name':'Di',"
    "'message_author_id':'u0','conversation_id':'c1',"
    "'emoji':'\\ud83d\\udc4d'},"
    "'changed':['message_id','user_id','reactor_name',"
    "'message_author_id','conversation_id','emoji'],"
    "'ts_ms':1763769780000,'source':{'format':'dynamodb'}}",
    "{'id':'ddb-9','op':'insert','table':'Reactions',"
    "'keys':{'message_id':'m1','user_id':'u3'},"
    "'new':{'message_id':'m1','user_id':'u3','reactor_name':'Ed',"
    "'message_author_id':'u0','conversation_id':'c1',"
    "'emoji':'\\ud83d\\udc4e'},"
    "'changed':['message_id','user_id','reactor_name',"
    "'message_author_id','conversation_id','emoji'],"
    "'ts_ms':1763769781000,'source':{'format':'dynamodb'}}",
    "{'id':'ddb-10','op':'insert','table':'Devices',"
    "'keys':{'device_id':'d1'},"
    "'new':{'device_id':'d1','user_id':'u1','platform':'ios',"
    "'token':'a1b2c3d4e5f6','app_version':'3.2.1'},"
    "'changed':['device_id','user_id','platform','token','app_version'],"
    "'ts_ms':1763769840000,'source':{'format':'dynamodb'}}",
    "{'id':'ddb-11','op':'remove','table':'Devices',"
    "'keys':{'device_id':'d0'},"
    "'old':{'device_id':'d0','user_id':'u1','platform':'android',"
    "'token':'f6e5d4c3b2a1'},"
    "'changed':['device_id','user_id','platform','token'],"
    "'ts_ms':1763769841000,'source':{'format':'dynamodb'}}",
    "{'id':'ddb-12','op':'insert','table':'Conversations',"
    "'keys':{'conversation_id':'c3'},"
    "'new':{'conversation_id':'c3','created_by':'u0',"
    "'member_ids':['u0','u1','u2'],'title':'Team'},"
    "'changed':['conversation_id','created_by','member_ids','title'],"
    "'ts_ms':1763769900000,'source':{'format':'dynamodb'}}",
    "{'id':'ddb-13','op':'insert','table':'Reports',"
    "'keys':{'report_id':'r1'},"
    "'new':{'report_id':'r1','reporter_id':'u2','message_id':'m3',"
    "'reason':'spam','details':null},"
    "'changed':['report_id','reporter_id','message_id','reason','details'],"
    "'ts_ms':1763769960000,'source':{'format':'dynamodb'}}",
    "{'id':'0/16B3799:1a2b3d','op':'modify','table':'Users',"
    "'keys':{'id':5},"
    "'new':{'id':5,'name':'Fay','email':'fay@example.org',"
    "'last_seen':1763769960000,'settings':{'push':true,'email':false}},"
    "'old':{'id':5,'name':'Fay','email':'fay@example.org',"
    "'last_seen':1763769000000,'settings':{'push':true,'email':false}},"
    "'changed':['last_seen'],"
    "'ts_ms':1763769961000,'source':{'format':'debezium',"
    "'connector':'postgresql','db':'chat','schema':'public'}}",
    "{'id':'ddb-15','op':'remove','table':'Messages',"
    "'keys':{'conversation_id':'c1','message_id':'m2'},"
    "'old':{'conversation_id':'c1','message_id':'m2','sender_id':'u1',"
    "'kind':'image/png'},"
    "'changed':['conversation_id','message_id','sender_id','kind'],"
    "'ts_ms':1763770000000,'source':{'format':'dynamodb'}}",
    "{'id':'ce-16','op':'insert','table':null,'type':'chat.typing',"
    "'new':{'conversation_id':'c1','user_id':'u2'},'changed':null,"
    "'ts_ms':1763770001000,'source':{'format':'cloudevents',"
    "'ce_source':'/chat/web'}}",
};

static int bench_chat_rules(void)
{
    enum { RUNS = 5 };
    json_t *docs[HR_ARRAY_SIZE(bench_docs)];
    struct fanout_pattern *patterns[64];
    size_t i, d, n = 0, round, per_pass = 0, matches = 0, passes = 0;
    double rates[RUNS], t0, t;
    json_error_t jerr;
    json_t *config, *rule;
    char errstr[256];
    int run;

    config = json_load_file(HX_SOURCE_DIR "/workers/fanout/examples/"
                                          "chat-rules.json",
                            0, &jerr);
    if (!config) {
        print_error("chat-rules.json: %s\n", jerr.text);
        return 1;
    }
    json_array_foreach(json_object_get(config, "rules"), i, rule)
    {
        json_t *pattern =
            json_object_get(json_object_get(rule, "match"), "pattern");

        if (!pattern || n == HR_ARRAY_SIZE(patterns))
            continue;
        patterns[n] = fanout_pattern_compile(pattern, errstr, sizeof(errstr));
        if (!patterns[n]) {
            print_error("rules[%zu]: %s\n", i, errstr);
            return 1;
        }
        n++;
    }
    for (d = 0; d < HR_ARRAY_SIZE(bench_docs); d++) {
        docs[d] = load(bench_docs[d]);
        for (i = 0; i < n; i++)
            per_pass += fanout_pattern_match(patterns[i], docs[d]);
    }
    for (run = 0; run < RUNS; run++) {
        size_t done = 0;

        t0 = hr_time_mono_s();
        do {
            for (round = 0; round < 1000; round++) {
                for (d = 0; d < HR_ARRAY_SIZE(bench_docs); d++)
                    for (i = 0; i < n; i++)
                        matches += fanout_pattern_match(patterns[i], docs[d]);
                done += HR_ARRAY_SIZE(bench_docs);
                passes++;
            }
            t = hr_time_mono_s() - t0;
        } while (t < 0.5);
        rates[run] = (double)done / t;
    }
    qsort(rates, RUNS, sizeof(rates[0]), cmp_double);
    print_message("fanout_pattern bench: %zu patterns (chat-rules.json) x "
                  "%zu documents, %zu pairs match: median %.0f documents/s "
                  "(%.0f ns/document; %d runs of 0.5 s: %.0f..%.0f)\n",
                  n, HR_ARRAY_SIZE(bench_docs), per_pass, rates[RUNS / 2],
                  1e9 / rates[RUNS / 2], RUNS, rates[0], rates[RUNS - 1]);
    if (matches != per_pass * passes) {
        print_error("bench: %zu matches, expected %zu\n", matches,
                    per_pass * passes);
        return 1;
    }
    for (i = 0; i < n; i++)
        fanout_pattern_free(patterns[i]);
    for (d = 0; d < HR_ARRAY_SIZE(bench_docs); d++)
        json_decref(docs[d]);
    json_decref(config);
    return 0;
}

static int report_counts(void **state)
{
    (void)state;
    print_message("fanout_pattern: %zu match cases, %zu invalid patterns\n",
                  n_match_cases, n_invalid_cases);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_values_match_by_type_and_value),
        cmocka_unit_test(test_numbers_compare_numerically),
        cmocka_unit_test(
            test_null_matches_present_null_and_empty_matches_empty),
        cmocka_unit_test(test_prefix_and_suffix_match_strings_only),
        cmocka_unit_test(test_equals_ignore_case_folds_ascii_letters_only),
        cmocka_unit_test(test_wildcard_matches_runs_and_escapes),
        cmocka_unit_test(test_anything_but_matches_present_values_not_excluded),
        cmocka_unit_test(test_numeric_compares_json_numbers_only),
        cmocka_unit_test(test_exists_tests_for_a_leaf_value),
        cmocka_unit_test(test_document_arrays_match_when_any_element_matches),
        cmocka_unit_test(test_nested_objects_and_keys_are_anded),
        cmocka_unit_test(test_or_matches_any_alternative_at_its_level),
        cmocka_unit_test(test_dotted_keys_are_paths_through_nested_objects),
        cmocka_unit_test(test_dotted_and_nested_spellings_merge_into_one_level),
        cmocka_unit_test(test_dotted_keys_also_match_dotted_document_keys),
        cmocka_unit_test(test_or_alternative_overrides_the_same_field_outside),
        cmocka_unit_test(
            test_anything_but_takes_lists_of_prefixes_and_suffixes),
        cmocka_unit_test(test_numbers_beyond_the_normal_range_still_match),
        cmocka_unit_test(
            test_numbers_jansson_cannot_hold_never_reach_the_compiler),
        cmocka_unit_test(test_cidr_matches_addresses_in_the_network),
        cmocka_unit_test(test_invalid_patterns_are_rejected_naming_the_path),
        cmocka_unit_test(test_compiled_pattern_outlives_its_json),
        cmocka_unit_test(test_non_object_document_has_no_fields),
        cmocka_unit_test(test_error_fits_a_small_buffer),
        cmocka_unit_test(test_long_paths_are_cut_in_messages),
        cmocka_unit_test(test_free_null_is_a_no_op),
    };

    if (getenv("HERALD_FANOUT_PATTERN_BENCH"))
        return bench_chat_rules();
    return cmocka_run_group_tests_name("fanout_pattern", tests, NULL,
                                       report_counts);
}
