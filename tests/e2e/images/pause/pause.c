/* The pod sandbox's placeholder process: holds the pod's namespaces, reaps zombies (it is PID 1
 * when the pod shares its PID namespace) and exits on SIGINT/SIGTERM. Built with gcc -static. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) {
	(void)sig;
	_exit(0);
}

static void on_child(int sig) {
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
}

static void handle(int sig, void (*fn)(int)) {
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sa.sa_flags = SA_RESTART | (sig == SIGCHLD ? SA_NOCLDSTOP : 0);
	if (sigaction(sig, &sa, NULL) < 0) {
		perror("pause: sigaction");
		exit(1);
	}
}

int main(int argc, char **argv) {
	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		puts("pause (sandboxed-event-pipeline e2e)");
		return 0;
	}
	if (getpid() != 1) {
		fputs("pause: warning: not running as PID 1\n", stderr);
	}
	handle(SIGINT, on_term);
	handle(SIGTERM, on_term);
	handle(SIGCHLD, on_child);
	for (;;) {
		pause();
	}
}
