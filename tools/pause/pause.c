// The pod sandbox's process for the node suite's containerd (its sandbox_image): it holds
// the pod's namespaces open, reaps what is reparented to it, and ends on SIGINT or SIGTERM.
// No registry is reachable from the project's machines, so the image is built here
// (scripts/build-node-images.sh), static, on an empty root file system.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, 0, WNOHANG) > 0) {
  }
}

int main(void) {
  signal(SIGINT, stop);
  signal(SIGTERM, stop);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
