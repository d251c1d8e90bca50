// A watchdog for the tests of files that must be refused without blocking (a FIFO where a model
// or a cache is expected): shared by the GGUF, safetensors and pipeline-cache tests.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

// Runs `body` on a thread and waits for it. Opening a FIFO for reading waits for a writer, so
// once the body is later than `seconds` the FIFO's writing end is opened: a regression then
// fails the test instead of hanging the suite. The limit only catches a hang; it times nothing.
inline bool finishes_without_blocking(const std::function<void()> &body, const std::string &fifo,
                                      int seconds)
{
    std::packaged_task<void()> task(body);
    std::future<void> done = task.get_future();
    std::thread thread(std::move(task));
    bool in_time = done.wait_for(std::chrono::seconds(seconds)) == std::future_status::ready;
    std::vector<int> writers;
    while (done.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
        int fd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) writers.push_back(fd);
    }
    thread.join();
    for (int fd : writers) close(fd);
    return in_time;
}
