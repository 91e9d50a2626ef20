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
        /* An ingest batch is one script call with every event's value: a
         * thousand keep three batches in flight (submit) within ~45 MB
         * and the call's Redis time per event as low as bigger ones. */
        .batch_max = 1000,
        .validate = email_validate,
        .init = email_init,
        .submit = email_submit,
        .handle = email_handle,
        .tick = email_tick,
        .fini = email_fini,
    };

    return hr_worker_main(&def, argc, argv);
}
