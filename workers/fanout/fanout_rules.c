#include "fanout_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_pattern.h"
#include "fanout_value.h"
#include "hr_banned.h"
#include "hr_compat.h"
#include "hr_conf.h"

static const char *const known_ops[] = {"insert", "modify", "remove",
                                        "snapshot"};

/* A match list: absent, a string, or an array of non-empty strings. */
static int string_list(
    const json_t *v, char ***out, size_t *n, char *errstr, size_t errstr_size)
{
    size_t i;
    json_t *s;

    *out = NULL;
    *n = 0;
    if (!v)
        return 0;
    if (json_is_string(v)) {
        if (!json_string_length(v)) {
            snprintf(errstr, errstr_size, "must be a non-empty string");
            return -1;
        }
        *out = calloc(1, sizeof(**out));
        HR_ASSERT(*out);
        (*out)[0] = strdup(json_string_value(v));
        *n = 1;
        return 0;
    }
    if (!json_is_array(v)) {
        snprintf(errstr, errstr_size,
                 "must be a string or an array of strings");
        return -1;
    }
    *out = calloc(json_array_size(v) + 1, sizeof(**out));
    HR_ASSERT(*out);
    json_array_foreach(v, i, s)
    {
        if (!json_is_string(s) || !json_string_length(s)) {
            snprintf(errstr, errstr_size, "[%zu] must be a non-empty string",
                     i);
            return -1;
        }
        (*out)[(*n)++] = strdup(json_string_value(s));
    }
    return 0;
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static bool in_list(char *const *list, size_t n, const char *s)
{
    if (!s)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(list[i], s))
            return true;
    }
    return false;
}

static int webhook_index(const struct fanout_rules *rules, const char *name)
{
    for (size_t i = 0; i < rules->nwebhooks; i++) {
        if (!strcmp(rules->webhooks[i], name))
            return (int)i;
    }
    return -1;
}

/* Compile one optional value field of a target. */
static int target_value(struct hr_conf *cfg,
                        const char *where,
                        const json_t *spec,
                        int in_for_each,
                        struct fanout_value **out)
{
    char errstr[256];

    *out = NULL;
    if (!spec)
        return 0;
    *out = fanout_value_compile(spec, in_for_each, errstr, sizeof(errstr));
    if (!*out) {
        hr_conf_add_error(cfg, "%s: %s", where, errstr);
        return 1;
    }
    return 0;
}

static int load_target(struct fanout_rules *rules,
                       struct fanout_target *t,
                       const json_t *spec,
                       const char *where,
                       struct hr_conf *cfg)
{
    const json_t *topic = json_object_get(spec, "topic");
    const json_t *hook = json_object_get(spec, "webhook");
    const json_t *type = json_object_get(spec, "type");
    const json_t *for_each = json_object_get(spec, "for_each");
    const json_t *data = json_object_get(spec, hook ? "body" : "data");
    char field[512];
    int bad = 0;

    t->webhook = -1;
    if (!json_is_object(spec)) {
        hr_conf_add_error(cfg, "%s: must be an object", where);
        return 1;
    }
    {
        static const char *const known[] = {
            "topic", "webhook", "type", "key", "data", "body", "for_each"};
        const char *field_name;
        json_t *ignored;

        json_object_foreach((json_t *)(uintptr_t)spec, field_name, ignored)
        {
            size_t k;

            for (k = 0; k < HR_ARRAY_SIZE(known); k++) {
                if (!strcmp(field_name, known[k]))
                    break;
            }
            if (k == HR_ARRAY_SIZE(known)) {
                hr_conf_add_error(cfg, "%s.%s: unknown field", where,
                                  field_name);
                bad++;
            }
        }
    }
    if (!!topic == !!hook) {
        hr_conf_add_error(cfg,
                          "%s: needs exactly one of 'topic' or "
                          "'webhook'",
                          where);
        return 1;
    }
    if (topic) {
        if (!json_is_string(topic) || !json_string_length(topic)) {
            hr_conf_add_error(cfg, "%s.topic: must be a non-empty string",
                              where);
            bad++;
        } else {
            t->topic = strdup(json_string_value(topic));
        }
        if (json_object_get(spec, "body")) {
            hr_conf_add_error(cfg,
                              "%s.body: only webhooks have a body; "
                              "topics use 'data'",
                              where);
            bad++;
        }
    } else if (!json_is_string(hook) ||
               (t->webhook = webhook_index(rules, json_string_value(hook))) <
                   0) {
        hr_conf_add_error(cfg, "%s.webhook: no webhook named '%s'", where,
                          json_is_string(hook) ? json_string_value(hook)
                                               : "(not a string)");
        bad++;
    }
    if (hook && json_object_get(spec, "data")) {
        hr_conf_add_error(cfg,
                          "%s.data: webhooks send a 'body'; 'data' is for "
                          "topics",
                          where);
        bad++;
    }
    if (type) {
        if (!json_is_string(type) || !json_string_length(type)) {
            hr_conf_add_error(cfg, "%s.type: must be a non-empty string",
                              where);
            bad++;
        } else {
            t->type = strdup(json_string_value(type));
        }
    }
    snprintf(field, sizeof(field), "%s.for_each", where);
    if (for_each &&
        (!json_is_string(for_each) || json_string_value(for_each)[0] != '$')) {
        hr_conf_add_error(cfg, "%s: must be a path ('$.new.list')", field);
        bad++;
    } else {
        bad += target_value(cfg, field, for_each, 0, &t->for_each);
    }
    snprintf(field, sizeof(field), "%s.key", where);
    bad += target_value(cfg, field, json_object_get(spec, "key"), !!for_each,
                        &t->key);
    snprintf(field, sizeof(field), "%s.%s", where, hook ? "body" : "data");
    if (!data) {
        json_t *whole = json_string("$");

        bad += target_value(cfg, field, whole, !!for_each, &t->data);
        json_decref(whole);
    } else {
        bad += target_value(cfg, field, data, !!for_each, &t->data);
    }
    return bad;
}

static int load_match(struct fanout_rule *r,
                      const json_t *match,
                      const char *where,
                      struct hr_conf *cfg)
{
    char errstr[256];
    int bad = 0;
    const char *key;
    json_t *v;

    if (!match)
        return 0;
    if (!json_is_object(match)) {
        hr_conf_add_error(cfg, "%s.match: must be an object", where);
        return 1;
    }
    json_object_foreach((json_t *)(uintptr_t)match, key, v)
    {
        if (strcmp(key, "table") && strcmp(key, "op") && strcmp(key, "type") &&
            strcmp(key, "changed") && strcmp(key, "pattern")) {
            hr_conf_add_error(cfg, "%s.match.%s: unknown field", where, key);
            bad++;
        }
    }
#define HR_LIST(field, list, count)                                      \
    if (string_list(json_object_get(match, field), &r->list, &r->count,  \
                    errstr, sizeof(errstr))) {                           \
        hr_conf_add_error(cfg, "%s.match.%s: %s", where, field, errstr); \
        bad++;                                                           \
    }
    HR_LIST("table", tables, ntables)
    HR_LIST("op", ops, nops)
    HR_LIST("type", types, ntypes)
    HR_LIST("changed", changed, nchanged)
#undef HR_LIST
    for (size_t i = 0; i < r->nops; i++) {
        size_t k;

        for (k = 0; k < HR_ARRAY_SIZE(known_ops); k++) {
            if (!strcmp(r->ops[i], known_ops[k]))
                break;
        }
        if (k == HR_ARRAY_SIZE(known_ops)) {
            hr_conf_add_error(cfg,
                              "%s.match.op: unknown op '%s' (insert, "
                              "modify, remove, snapshot)",
                              where, r->ops[i]);
            bad++;
        }
    }
    if (json_object_get(match, "pattern")) {
        r->pattern = fanout_pattern_compile(json_object_get(match, "pattern"),
                                            errstr, sizeof(errstr));
        if (!r->pattern) {
            hr_conf_add_error(cfg, "%s.match.pattern: %s", where, errstr);
            bad++;
        }
    }
    return bad;
}

int fanout_rules_load(struct fanout_rules *rules,
                      const json_t *config,
                      struct hr_conf *cfg)
{
    const json_t *list = json_object_get(config, "rules");
    const json_t *hooks = json_object_get(config, "webhooks");
    const char *name;
    json_t *spec;
    size_t i;
    int bad = 0;

    memset(rules, 0, sizeof(*rules));
    if (!json_is_array(list) || !json_array_size(list)) {
        hr_conf_add_error(cfg, "rules: the config file needs a non-empty "
                               "\"rules\" array");
        return 1;
    }
    if (hooks && !json_is_object(hooks)) {
        hr_conf_add_error(cfg, "webhooks: must be an object of name -> "
                               "webhook");
        return 1;
    }
    rules->webhooks = calloc(json_object_size(hooks) + 1, sizeof(char *));
    HR_ASSERT(rules->webhooks);
    json_object_foreach((json_t *)(uintptr_t)hooks, name, spec)
        rules->webhooks[rules->nwebhooks++] = strdup(name);

    rules->rules = calloc(json_array_size(list), sizeof(*rules->rules));
    HR_ASSERT(rules->rules);
    json_array_foreach(list, i, spec)
    {
        struct fanout_rule *r = &rules->rules[rules->n++];
        const json_t *rname = json_object_get(spec, "name");
        const json_t *emit = json_object_get(spec, "emit");
        char where[256];
        size_t k;
        json_t *t;

        snprintf(where, sizeof(where), "rules[%zu]", i);
        if (!json_is_object(spec)) {
            hr_conf_add_error(cfg, "%s: must be an object", where);
            bad++;
            continue;
        }
        if (!json_is_string(rname) || !json_string_length(rname)) {
            hr_conf_add_error(cfg, "%s.name: must be a non-empty string",
                              where);
            bad++;
            r->name = strdup("");
        } else {
            r->name = strdup(json_string_value(rname));
            snprintf(where, sizeof(where), "rules[%zu] '%s'", i, r->name);
            /* Rules that are not objects have no name; report a
             * duplicate once, however many rules share the name. */
            for (k = 0; k + 1 < rules->n; k++) {
                if (rules->rules[k].name &&
                    !strcmp(rules->rules[k].name, r->name)) {
                    hr_conf_add_error(cfg,
                                      "%s.name: duplicate rule name "
                                      "(ids derive from it)",
                                      where);
                    bad++;
                    break;
                }
            }
        }
        bad += load_match(r, json_object_get(spec, "match"), where, cfg);
        if (!json_is_array(emit) || !json_array_size(emit)) {
            hr_conf_add_error(cfg, "%s.emit: must be a non-empty array", where);
            bad++;
            continue;
        }
        r->targets = calloc(json_array_size(emit), sizeof(*r->targets));
        HR_ASSERT(r->targets);
        json_array_foreach(emit, k, t)
        {
            char twhere[300];

            snprintf(twhere, sizeof(twhere), "%s.emit[%zu]", where, k);
            bad +=
                load_target(rules, &r->targets[r->ntargets++], t, twhere, cfg);
        }
    }
    return bad;
}

void fanout_rules_release(struct fanout_rules *rules)
{
    for (size_t i = 0; i < rules->n; i++) {
        struct fanout_rule *r = &rules->rules[i];

        free(r->name);
        free_list(r->tables, r->ntables);
        free_list(r->ops, r->nops);
        free_list(r->types, r->ntypes);
        free_list(r->changed, r->nchanged);
        fanout_pattern_free(r->pattern);
        for (size_t k = 0; k < r->ntargets; k++) {
            free(r->targets[k].topic);
            free(r->targets[k].type);
            fanout_value_free(r->targets[k].key);
            fanout_value_free(r->targets[k].data);
            fanout_value_free(r->targets[k].for_each);
        }
        free(r->targets);
    }
    free(rules->rules);
    free_list(rules->webhooks, rules->nwebhooks);
    memset(rules, 0, sizeof(*rules));
}

/* Every field named in match.changed must be in the document's "changed". */
static bool changed_all(const struct fanout_rule *rule, const json_t *doc)
{
    const json_t *changed = json_object_get(doc, "changed");

    for (size_t i = 0; i < rule->nchanged; i++) {
        size_t k;
        json_t *f;
        bool found = false;

        json_array_foreach(changed, k, f)
        {
            if (json_is_string(f) &&
                !strcmp(json_string_value(f), rule->changed[i])) {
                found = true;
                break;
            }
        }
        if (!found)
            return false;
    }
    return true;
}

bool fanout_rule_matches(const struct fanout_rule *rule, const json_t *doc)
{
    if (rule->ntables &&
        !in_list(rule->tables, rule->ntables,
                 json_string_value(json_object_get(doc, "table"))))
        return false;
    if (rule->nops && !in_list(rule->ops, rule->nops,
                               json_string_value(json_object_get(doc, "op"))))
        return false;
    if (rule->ntypes &&
        !in_list(rule->types, rule->ntypes,
                 json_string_value(json_object_get(doc, "type"))))
        return false;
    if (rule->nchanged && !changed_all(rule, doc))
        return false;
    return !rule->pattern || fanout_pattern_match(rule->pattern, doc);
}
