/*
 * Fan-out rules (SPEC section 8): which change documents a rule matches,
 * and what it emits for them — events to topics and calls to webhooks.
 */
#ifndef FANOUT_RULES_H
#define FANOUT_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct fanout_pattern;
struct fanout_value;
struct hr_conf;

/** One emit entry: a topic event or a webhook call. */
struct fanout_target {
    int webhook;                   /* -1: topic target; else webhook index */
    char *topic;                   /* topic targets */
    char *type;                    /* CloudEvent type (default: the doc's
                                      type, else "<table>.<op>") */
    struct fanout_value *key;      /* NULL: the change id */
    struct fanout_value *data;     /* event data / webhook body ("$") */
    struct fanout_value *for_each; /* NULL: once */
};

struct fanout_rule {
    char *name;
    char **tables, **ops, **types, **changed;
    size_t ntables, nops, ntypes, nchanged;
    struct fanout_pattern *pattern; /* NULL: any document */
    struct fanout_target *targets;
    size_t ntargets;
};

struct fanout_rules {
    struct fanout_rule *rules;
    size_t n;
    char **webhooks; /* names, in the order of "webhooks" */
    size_t nwebhooks;
};

/**
 * Compile "rules" and check their references to "webhooks" in @config (the
 * --config JSON). Every problem is reported with hr_conf_add_error() naming
 * the rule and the field ("rules[0] 'new-message'.emit[1].key: invalid
 * path '$..x'"). Returns the number of problems (0: @rules is usable).
 */
int fanout_rules_load(struct fanout_rules *rules,
                      const json_t *config,
                      struct hr_conf *cfg);

/** Release what fanout_rules_load() built. */
void fanout_rules_release(struct fanout_rules *rules);

/** Whether @rule matches the change document @doc. */
bool fanout_rule_matches(const struct fanout_rule *rule, const json_t *doc);

#endif
