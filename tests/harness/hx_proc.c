/* Child processes: fork/exec with a merged environment and redirected
 * stdio, waiting with a timeout. */
#define _GNU_SOURCE /* close_range(), environ */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "hr_banned.h"

#define HX_PROC_POLL_MS 10

struct hx_proc {
    pid_t pid;
    bool exited;
    int status; /* WEXITSTATUS or 128 + signal, once exited */
};

/* Whether "K=V" entry @entry sets the variable named by "K=..." @kv. */
static bool same_name(const char *entry, const char *kv)
{
    const char *eq = strchr(kv, '=');
    size_t len = eq ? (size_t)(eq - kv) : strlen(kv);

    return !strncmp(entry, kv, len) && entry[len] == '=';
}

/* The child's environment: ours minus what @env overrides, then @env. Built
 * before fork(): a child of a threaded process may not malloc. The strings
 * are borrowed; free only the array. */
static char **env_merge(const char *const *env)
{
    size_t n = 0, extra = 0, k = 0;
    char **out;

    while (environ[n])
        n++;
    while (env && env[extra])
        extra++;
    out = calloc(n + extra + 1, sizeof(*out));
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bool overridden = false;

        for (size_t j = 0; j < extra && !overridden; j++)
            overridden = same_name(environ[i], env[j]);
        if (!overridden)
            out[k++] = environ[i];
    }
    for (size_t j = 0; j < extra; j++)
        out[k++] = (char *)(uintptr_t)env[j]; /* exec wants char *const */
    out[k] = NULL;
    return out;
}

/* In the child: async-signal-safe calls only. */
static void child_exec(const char *const *argv,
                       char **envp,
                       pid_t parent,
                       int in_fd,
                       int out_fd,
                       int err_fd)
{
    struct sigaction sa;
    sigset_t none;
    static const char msg[] = "hx: exec failed: ";

    /* Die with the test process, even when it crashes: no orphaned
     * redis-server or worker keeps running after a failed test. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);

    /* Undo what the test process set up (librdkafka and the harness
     * ignore or block signals); exec keeps ignored dispositions. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < 65; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa, NULL);
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (dup2(in_fd, 0) < 0)
        _exit(127);
    if (out_fd >= 0 && out_fd != 1 && dup2(out_fd, 1) < 0)
        _exit(127);
    if (err_fd >= 0 && err_fd != 2 && dup2(err_fd, 2) < 0)
        _exit(127);
    close_range(3, ~0U, 0);

    environ = envp;
    execvp(argv[0], (char *const *)(uintptr_t)argv);
    if (write(2, msg, sizeof(msg) - 1) >= 0 &&
        write(2, argv[0], strlen(argv[0])) >= 0)
        (void)!write(2, "\n", 1);
    _exit(127);
}

struct hx_proc *hx_proc_spawn_fds(const char *const *argv,
                                  const char *const *env,
                                  int stdin_fd,
                                  int stdout_fd,
                                  int stderr_fd)
{
    struct hx_proc *p;
    char **envp;
    int null_fd = -1;
    pid_t parent = getpid();

    p = calloc(1, sizeof(*p));
    envp = env_merge(env);
    if (!p || !envp) {
        fprintf(stderr, "hx: out of memory\n");
        goto out_free;
    }
    if (stdin_fd < 0) {
        null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd < 0) {
            fprintf(stderr, "hx: cannot open /dev/null: %s\n", strerror(errno));
            goto out_free;
        }
        stdin_fd = null_fd;
    }
    fflush(NULL); /* no buffered output written twice */
    p->pid = fork();
    if (p->pid < 0) {
        fprintf(stderr, "hx: cannot fork for '%s': %s\n", argv[0],
                strerror(errno));
        goto out_free;
    }
    if (p->pid == 0)
        child_exec(argv, envp, parent, stdin_fd, stdout_fd, stderr_fd);

    if (null_fd >= 0)
        close(null_fd);
    free(envp);
    return p;

out_free:
    if (null_fd >= 0)
        close(null_fd);
    free(envp);
    free(p);
    return NULL;
}

static int open_output(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd < 0)
        fprintf(stderr, "hx: cannot open '%s': %s\n", path, strerror(errno));
    return fd;
}

struct hx_proc *hx_proc_spawn(const char *const *argv,
                              const char *const *env,
                              const char *stdout_path,
                              const char *stderr_path)
{
    struct hx_proc *p = NULL;
    int out_fd = -1, err_fd = -1;

    if (stdout_path && (out_fd = open_output(stdout_path)) < 0)
        return NULL;
    if (stderr_path && (err_fd = open_output(stderr_path)) < 0)
        goto out_close;
    p = hx_proc_spawn_fds(argv, env, -1, out_fd, err_fd);
out_close:
    if (out_fd >= 0)
        close(out_fd);
    if (err_fd >= 0)
        close(err_fd);
    return p;
}

pid_t hx_proc_pid(const struct hx_proc *p)
{
    return p->pid;
}

/* Reap without blocking (or blocking when @block); true once exited. */
static bool proc_reap(struct hx_proc *p, bool block)
{
    int wstatus;
    pid_t r;

    if (p->exited)
        return true;
    do
        r = waitpid(p->pid, &wstatus, block ? 0 : WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return false;
    if (r < 0) {
        /* Someone else reaped it (SIGCHLD ignored?): report a failure. */
        fprintf(stderr, "hx: waitpid(%ld): %s\n", (long)p->pid,
                strerror(errno));
        p->exited = true;
        p->status = 255;
        return true;
    }
    p->exited = true;
    if (WIFEXITED(wstatus))
        p->status = WEXITSTATUS(wstatus);
    else if (WIFSIGNALED(wstatus))
        p->status = 128 + WTERMSIG(wstatus);
    else
        p->status = 255;
    return true;
}

int hx_proc_signal(struct hx_proc *p, int sig)
{
    if (p->exited)
        return -1;
    if (kill(p->pid, sig)) {
        fprintf(stderr, "hx: kill(%ld, %d): %s\n", (long)p->pid, sig,
                strerror(errno));
        return -1;
    }
    return 0;
}

int hx_proc_wait(struct hx_proc *p, int timeout_ms, int *exit_status)
{
    int64_t deadline = hx_now_ms() + timeout_ms;

    if (timeout_ms < 0) {
        proc_reap(p, true);
    } else {
        while (!proc_reap(p, false)) {
            if (hx_now_ms() >= deadline)
                return -1;
            hx_sleep_ms(HX_PROC_POLL_MS);
        }
    }
    if (exit_status)
        *exit_status = p->status;
    return 0;
}

bool hx_proc_is_running(struct hx_proc *p)
{
    return !proc_reap(p, false);
}

void hx_proc_free(struct hx_proc *p)
{
    if (!p)
        return;
    if (!proc_reap(p, false)) {
        kill(p->pid, SIGKILL);
        proc_reap(p, true);
    }
    free(p);
}

bool hx_on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4096];

    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *end = strchr(path, ':');
        size_t len = end ? (size_t)(end - path) : strlen(path);

        if (len > 0 && len < sizeof(buf) - strlen(prog) - 2) {
            snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, path, prog);
            if (!access(buf, X_OK))
                return true;
        }
        if (!end)
            break;
        path = end + 1;
    }
    return false;
}
