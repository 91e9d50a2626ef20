/* herald-unread's settings (SPEC section 9, Unread). */
#include <string.h>

#include <jansson.h>

#include "unread.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

const struct hr_conf_spec unread_conf[] = {
    HR_CONF_STR("HERALD_UNREAD_CHANGED_TOPIC",
                "herald.unread",
                0,
                "topic for unread.changed events; off disables them"),
    HR_CONF_STR("HERALD_UNREAD_PUSH_TOPIC",
                NULL,
                0,
                "when set, one push.requested per recipient of each message, "
                "with the recipient's exact badge"),
    HR_CONF_STR("HERALD_UNREAD_PUSH_TITLE",
                "{{sender_name}}",
                0,
                "push title template: {{sender_name}}, {{preview}}, "
                "{{conversation_title}}"),
    HR_CONF_STR("HERALD_UNREAD_PUSH_BODY",
                "{{preview}}",
                0,
                "push body template (same placeholders)"),
    HR_CONF_INT("HERALD_UNREAD_MAX_PER_CONVERSATION",
                "999",
                1,
                100000,
                0,
                "unread messages tracked exactly per user and conversation; "
                "counts saturate there"),
    HR_CONF_END,
};

static const char *const placeholders[] = {"sender_name", "preview",
                                           "conversation_title"};

/* Every {{name}} in a template must be a known placeholder, and the
 * template valid UTF-8: jansson refuses anything else, so every push built
 * from it would fail and the batch would pause forever. */
static void check_template(struct hr_conf *cfg, const char *name)
{
    const char *t = hr_conf_str(cfg, name);
    json_t *probe = t ? json_string(t) : NULL;

    if (t && !probe) {
        hr_conf_add_error(cfg, "%s: not valid UTF-8", name);
        return;
    }
    json_decref(probe);

    while (t && (t = strstr(t, "{{"))) {
        const char *end = strstr(t, "}}");
        size_t len, i;

        if (!end) {
            hr_conf_add_error(cfg, "%s: unterminated '{{'", name);
            return;
        }
        len = (size_t)(end - t - 2);
        for (i = 0; i < HR_ARRAY_SIZE(placeholders); i++) {
            if (strlen(placeholders[i]) == len &&
                !strncmp(t + 2, placeholders[i], len))
                break;
        }
        if (i == HR_ARRAY_SIZE(placeholders))
            hr_conf_add_error(cfg, "%s: unknown placeholder '%.*s'", name,
                              (int)len, t + 2);
        t = end + 2;
    }
}

void unread_validate(struct hr_conf *cfg)
{
    check_template(cfg, "HERALD_UNREAD_PUSH_TITLE");
    check_template(cfg, "HERALD_UNREAD_PUSH_BODY");
}

/* "off" (or an empty value) switches an output off. */
static const char *nonempty(const char *s)
{
    return s && *s && strcmp(s, "off") ? s : NULL;
}

void unread_settings_load(struct unread_settings *s, const struct hr_conf *cfg)
{
    s->changed_topic =
        nonempty(hr_conf_str(cfg, "HERALD_UNREAD_CHANGED_TOPIC"));
    s->push_topic = nonempty(hr_conf_str(cfg, "HERALD_UNREAD_PUSH_TOPIC"));
    s->push_title = hr_conf_str(cfg, "HERALD_UNREAD_PUSH_TITLE");
    s->push_body = hr_conf_str(cfg, "HERALD_UNREAD_PUSH_BODY");
    s->max_per_conversation =
        hr_conf_int(cfg, "HERALD_UNREAD_MAX_PER_CONVERSATION");
    s->ttl_seconds = hr_conf_int(cfg, "HERALD_IDEMPOTENCY_TTL");
}
