#include "controller/adapters/directory_watcher.h"

#include <dirent.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace runway {
namespace {

// IN_CREATE is needed for new directories and symbolic links; a new regular file is reported by
// its IN_CLOSE_WRITE, so the consumer does not read it half written.
constexpr uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
constexpr uint32_t kFileChangeMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE;
constexpr absl::Duration kRootRetryInterval = absl::Seconds(1);
constexpr int kMaxDebounceFactor = 10;

absl::Duration MonotonicNow() {
  return absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

// poll() timeout in whole milliseconds, rounded up so a short wait does not become a busy loop.
int PollTimeoutMs(absl::Duration wait) {
  if (wait == absl::InfiniteDuration()) return -1;
  wait = std::clamp(wait, absl::ZeroDuration(), absl::Hours(1));
  return static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1))));
}

absl::Status WatchError(int error, const std::string& dir) {
  switch (error) {
    case ENOSPC:
      return absl::ResourceExhaustedError(
          absl::StrCat("inotify watch limit reached while watching ", dir,
                       "; raise the sysctl fs.inotify.max_user_watches"));
    case ENOENT:
      return absl::NotFoundError(absl::StrCat(dir, " does not exist"));
    case ENOTDIR:
      return absl::FailedPreconditionError(absl::StrCat(dir, " is not a directory"));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(absl::StrCat("cannot watch ", dir, ": permission denied"));
    default:
      return absl::InternalError(absl::StrCat("cannot watch ", dir, ": ", std::strerror(error)));
  }
}

bool IsDirectoryEntry(const std::string& parent, const dirent& entry) {
  if (entry.d_type != DT_UNKNOWN) return entry.d_type == DT_DIR;
  // Some filesystems do not fill d_type; lstat so that a link to a directory is not a directory.
  struct stat info;
  const std::string path = parent + "/" + entry.d_name;
  return ::lstat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

std::vector<std::string> ListSubdirectories(const std::string& dir) {
  std::vector<std::string> subdirectories;
  DIR* stream = ::opendir(dir.c_str());
  if (stream == nullptr) return subdirectories;  // vanished or unreadable: nothing to descend
  while (const dirent* entry = ::readdir(stream)) {
    if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0) continue;
    if (IsDirectoryEntry(dir, *entry)) subdirectories.push_back(dir + "/" + entry->d_name);
  }
  ::closedir(stream);
  return subdirectories;
}

}  // namespace

DirectoryWatcher::~DirectoryWatcher() { Stop(); }

absl::Status DirectoryWatcher::Start(const std::string& root, std::function<void()> on_change,
                                     absl::Duration debounce) {
  if (inotify_fd_ >= 0) return absl::FailedPreconditionError("DirectoryWatcher already started");
  root_ = root;
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  struct stat info;
  if (::stat(root_.c_str(), &info) != 0) return WatchError(errno, root_);
  if (!S_ISDIR(info.st_mode)) return WatchError(ENOTDIR, root_);

  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) {
    const int error = errno;
    if (error == EMFILE) {
      return absl::ResourceExhaustedError(
          "inotify instance limit reached; raise the sysctl fs.inotify.max_user_instances");
    }
    return absl::InternalError(absl::StrCat("inotify_init1: ", std::strerror(error)));
  }
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  absl::Status status = wake_fd_ < 0
                            ? absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)))
                            : absl::OkStatus();
  SetHealth(absl::OkStatus());
  if (status.ok()) status = WatchTree(root_);
  if (!status.ok()) {
    Stop();  // closes the descriptors and forgets the watches
    return status;
  }
  on_change_ = std::move(on_change);
  debounce_ = std::max(debounce, absl::ZeroDuration());
  thread_ = std::thread(&DirectoryWatcher::Run, this);
  return absl::OkStatus();
}

void DirectoryWatcher::Stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    while (::write(wake_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    thread_.join();
  }
  if (inotify_fd_ >= 0) ::close(inotify_fd_);  // also removes every watch
  if (wake_fd_ >= 0) ::close(wake_fd_);
  inotify_fd_ = -1;
  wake_fd_ = -1;
  path_by_wd_.clear();
  root_wd_ = -1;
}

absl::Status DirectoryWatcher::Health() const {
  absl::MutexLock lock(&health_mutex_);
  return health_;
}

void DirectoryWatcher::SetHealth(absl::Status status) {
  absl::MutexLock lock(&health_mutex_);
  health_ = std::move(status);
}

void DirectoryWatcher::Run() {
  bool pending = false;  // a change waits for its debounce
  absl::Duration first_event, last_event;
  absl::Duration next_root_check = MonotonicNow() + kRootRetryInterval;
  // The burst ends when it has been quiet for debounce_, or has lasted 10 * debounce_.
  auto burst_end = [&] {
    return std::min(last_event + debounce_, first_event + kMaxDebounceFactor * debounce_);
  };
  while (true) {
    const absl::Duration now = MonotonicNow();
    absl::Duration wait = pending ? burst_end() - now : absl::InfiniteDuration();
    if (root_wd_ < 0) wait = std::min(wait, next_root_check - now);

    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, PollTimeoutMs(wait)) < 0) {
      if (errno == EINTR) continue;
      SetHealth(absl::InternalError(absl::StrCat("poll: ", std::strerror(errno))));
      return;
    }
    if (fds[1].revents != 0) return;  // Stop()

    bool changed = (fds[0].revents & POLLIN) != 0 && DrainEvents();
    const absl::Duration after = MonotonicNow();
    if (root_wd_ < 0 && after >= next_root_check) {
      next_root_check = after + kRootRetryInterval;
      changed = TryRecoverRoot() || changed;
    }
    if (changed) {
      if (!pending) first_event = after;
      pending = true;
      last_event = after;
    }
    if (pending && after >= burst_end()) {
      pending = false;
      on_change_();
    }
  }
}

bool DirectoryWatcher::DrainEvents() {
  alignas(inotify_event) char buffer[64 * 1024];
  bool changed = false;
  while (true) {
    const ssize_t length = ::read(inotify_fd_, buffer, sizeof(buffer));
    if (length < 0 && errno == EINTR) continue;
    if (length <= 0) return changed;  // EAGAIN: drained
    for (const char* p = buffer; p < buffer + length;) {
      const auto* event = reinterpret_cast<const inotify_event*>(p);
      // The name is NUL padded to event->len bytes; empty for events about the watched dir.
      const std::string name = event->len > 0 ? std::string(event->name) : std::string();
      changed = HandleEvent(event->wd, event->mask, name) || changed;
      p += sizeof(inotify_event) + event->len;
    }
  }
}

bool DirectoryWatcher::HandleEvent(int wd, uint32_t mask, const std::string& name) {
  if (mask & IN_Q_OVERFLOW) {
    // Events were lost, perhaps the creation of directories: rescan to watch them.
    if (root_wd_ >= 0) {
      SetHealth(absl::OkStatus());
      absl::Status status = WatchTree(root_);
      if (!status.ok()) SetHealth(std::move(status));
    }
    return true;
  }
  auto it = path_by_wd_.find(wd);
  if (it == path_by_wd_.end()) return false;  // a watch already dropped
  const std::string dir = it->second;
  if (wd == root_wd_ && (mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT))) {
    // After a move the watches would follow the directory elsewhere: start over at the path.
    UnwatchAll();
    SetHealth(absl::UnavailableError(absl::StrCat(root_, " was removed or moved away")));
    return true;
  }
  if (mask & IN_IGNORED) {  // the kernel dropped the watch: directory deleted or unmounted
    path_by_wd_.erase(it);
    return false;
  }
  if (mask & (IN_DELETE_SELF | IN_MOVE_SELF)) return false;  // the parent reports it
  const std::string path = dir + "/" + name;
  if (mask & IN_ISDIR) {
    if (mask & (IN_CREATE | IN_MOVED_TO)) {
      absl::Status status = WatchTree(path);
      if (absl::IsResourceExhausted(status) || absl::IsPermissionDenied(status)) SetHealth(status);
    } else if (mask & IN_MOVED_FROM) {
      UnwatchTree(path);
    }
    return (mask & (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)) != 0;
  }
  if (mask & kFileChangeMask) return true;
  struct stat info;
  return (mask & IN_CREATE) && ::lstat(path.c_str(), &info) == 0 && S_ISLNK(info.st_mode);
}

absl::Status DirectoryWatcher::WatchOne(const std::string& dir) {
  // The root is the directory the caller named, even through a link; below it, never follow.
  const uint32_t mask = dir == root_ ? kWatchMask : (kWatchMask | IN_DONT_FOLLOW);
  const int wd = ::inotify_add_watch(inotify_fd_, dir.c_str(), mask);
  if (wd < 0) return WatchError(errno, dir);
  // Watching an already watched directory returns its descriptor again.
  path_by_wd_[wd] = dir;
  if (dir == root_) root_wd_ = wd;
  return absl::OkStatus();
}

absl::Status DirectoryWatcher::WatchTree(const std::string& dir) {
  // Iterative, so depth costs no stack; links are not followed, so it ends on link loops.
  std::vector<std::string> stack = {dir};
  while (!stack.empty()) {
    const std::string current = std::move(stack.back());
    stack.pop_back();
    absl::Status status = WatchOne(current);
    if (!status.ok()) {
      if (current == dir || absl::IsResourceExhausted(status)) return status;
      // Vanished or replaced by a file meanwhile is fine; unreadable is not.
      if (!absl::IsNotFound(status) && !absl::IsFailedPrecondition(status)) SetHealth(status);
      continue;
    }
    for (std::string& child : ListSubdirectories(current)) stack.push_back(std::move(child));
  }
  return absl::OkStatus();
}

void DirectoryWatcher::UnwatchTree(const std::string& dir) {
  const std::string prefix = dir + "/";
  for (auto it = path_by_wd_.begin(); it != path_by_wd_.end();) {
    if (it->second == dir || absl::StartsWith(it->second, prefix)) {
      ::inotify_rm_watch(inotify_fd_, it->first);
      it = path_by_wd_.erase(it);
    } else {
      ++it;
    }
  }
}

void DirectoryWatcher::UnwatchAll() {
  for (const auto& [wd, path] : path_by_wd_) ::inotify_rm_watch(inotify_fd_, wd);
  path_by_wd_.clear();
  root_wd_ = -1;
}

bool DirectoryWatcher::TryRecoverRoot() {
  struct stat info;
  if (::stat(root_.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) return false;
  SetHealth(absl::OkStatus());
  absl::Status status = WatchTree(root_);
  if (status.ok()) return true;
  UnwatchAll();
  SetHealth(std::move(status));
  return false;
}

}  // namespace runway
