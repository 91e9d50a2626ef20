/* herald-subs: App Store and Google Play notifications become
 * entitlements in Redis and entitlement.changed events (subs.h). */
#include "subs.h"

int main(int argc, char **argv)
{
    static const struct hr_worker_def def = {
        .name = "subs",
        .summary = "Verifies App Store Server Notifications V2 and Google "
                   "Play RTDN (read back from the Play Developer API), "
                   "applies them to entitlements in Redis and emits "
                   "entitlement.changed.",
        .topics = "herald.subscriptions",
        .conf = subs_conf,
        /* The input is the store's body, bare or in a CloudEvent. */
        .cloudevents = false,
        .uses_redis = true,
        .validate = subs_validate,
        .init = subs_init,
        .handle = subs_handle,
        .fini = subs_fini,
    };

    return hr_worker_main(&def, argc, argv);
}
