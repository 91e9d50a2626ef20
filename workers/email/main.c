/* herald-email: debounced and digested notification emails. */
#include "email.h"

int main(int argc, char **argv)
{
    static const struct hr_worker_def def = {
        .name = "email",
        .summary = "Collects notification.email into windows per user and "
                   "category and sends each as one email (digest) or the "
                   "first at once (leading), over SMTP or Amazon SES.",
        .topics = "herald.email",
        .conf = email_conf,
        .cloudevents = true,
        .uses_redis = true,
        .validate = email_validate,
        .init = email_init,
        .handle = email_handle,
        .tick = email_tick,
        .fini = email_fini,
    };

    return hr_worker_main(&def, argc, argv);
}
