// `vkinfer serve` over HTTP, as a client meets it: the test starts the server as a child process
// on a free loopback port (--port 0, the port read from its "serving" line), speaks HTTP/1.1
// over a plain socket, and stops it with SIGTERM, which must end it with status 0 within a few
// seconds. The greedy answers are held to `vkinfer generate --chat --temp 0`, the same engine
// through another path (one sequence, no scheduler, no HTTP). Needs the default model in the
// model cache; skipped without it.
#include <cjson/cJSON.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using Json = std::unique_ptr<cJSON, decltype(&cJSON_Delete)>;

Json Parse(const std::string &text) { return Json(cJSON_Parse(text.c_str()), cJSON_Delete); }

std::string ModelPath()
{
    const char *dir = getenv("VKI_MODEL_DIR");
    const char *home = getenv("HOME");
    std::string d = dir && dir[0] ? dir : std::string(home ? home : ".") + "/.cache/vkinfer/models";
    return d + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

bool HaveModel() { return access(ModelPath().c_str(), R_OK) == 0; }

/* ---- The server, a child process ------------------------------------------------------------ */

class Server {
public:
    // Starts `vkinfer serve -m MODEL --port 0 <args>`; false (with the log) if it did not come up.
    bool Start(const std::vector<std::string> &args)
    {
        int fds[2];
        if (pipe(fds) != 0) return false;
        std::vector<std::string> argv = {VKINFER_EXE, "serve", "-m", ModelPath(), "--port", "0"};
        argv.insert(argv.end(), args.begin(), args.end());
        pid_ = fork();
        if (pid_ == 0) {
            dup2(fds[1], 2);
            int null = open("/dev/null", O_WRONLY);
            if (null >= 0) dup2(null, 1);
            close(fds[0]);
            close(fds[1]);
            if (!getenv("VKI_VALIDATION")) setenv("VKI_VALIDATION", "1", 1);
            std::vector<char *> c;
            for (auto &a : argv) c.push_back(a.data());
            c.push_back(nullptr);
            execv(VKINFER_EXE, c.data());
            _exit(127);
        }
        close(fds[1]);
        if (pid_ < 0) {
            close(fds[0]);
            return false;
        }
        reader_ = std::thread([this, fd = fds[0]] {
            char buf[4096];
            ssize_t n;
            while ((n = read(fd, buf, sizeof buf)) > 0) {
                std::lock_guard<std::mutex> lock(mu_);
                log_.append(buf, (size_t)n);
            }
            close(fd);
        });
        // Up to 5 minutes: the first start on a CPU device compiles every kernel.
        auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
        while (std::chrono::steady_clock::now() < deadline) {
            std::string log = Log();
            size_t at = log.find("vkinfer: serving ");
            size_t url = at == std::string::npos ? at : log.find(" on http://127.0.0.1:", at);
            if (url != std::string::npos && log.find('\n', url) != std::string::npos) {
                model_id_ = log.substr(at + 17, url - at - 17);
                port_ = (uint16_t)atoi(log.c_str() + url + strlen(" on http://127.0.0.1:"));
                return port_ != 0;
            }
            int status;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    }

    // SIGTERM, then the exit status (-1: killed, or not gone within `seconds`), and how long
    // it took.
    int Stop(double seconds, double *out_took)
    {
        if (pid_ <= 0) return -1;
        auto t0 = std::chrono::steady_clock::now();
        kill(pid_, SIGTERM);
        int status = 0, code = -1;
        for (;;) {
            pid_t r = waitpid(pid_, &status, WNOHANG);
            double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (r == pid_) {
                code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                *out_took = took;
                break;
            }
            if (took > seconds) {
                kill(pid_, SIGKILL);
                waitpid(pid_, &status, 0);
                *out_took = took;
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        pid_ = -1;
        if (reader_.joinable()) reader_.join();
        return code;
    }

    ~Server()
    {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        if (reader_.joinable()) reader_.join();
    }

    std::string Log()
    {
        std::lock_guard<std::mutex> lock(mu_);
        return log_;
    }
    uint16_t port() const { return port_; }
    const std::string &model_id() const { return model_id_; }

private:
    pid_t pid_ = -1;
    uint16_t port_ = 0;
    std::string model_id_;
    std::thread reader_;
    std::mutex mu_;
    std::string log_;
};

/* ---- A minimal HTTP/1.1 client ---------------------------------------------------------------- */

struct Response {
    int status = 0;                            // 0: no answer
    std::map<std::string, std::string> headers; // names in lower case
    std::string body;                          // de-chunked
};

int Connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    timeval tv{120, 0}; // a greedy answer of a few tokens takes seconds even on lavapipe
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

bool SendAll(int fd, const std::string &data)
{
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return false;
        off += (size_t)n;
    }
    return true;
}

std::string ReadToEnd(int fd)
{
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, (size_t)n);
    return out;
}

std::string Lower(std::string s)
{
    for (char &c : s) c = (char)tolower((unsigned char)c);
    return s;
}

// Parses a whole response (the connection closed after it).
Response ParseResponse(const std::string &raw)
{
    Response r;
    size_t head_end = raw.find("\r\n\r\n");
    if (raw.compare(0, 9, "HTTP/1.1 ") != 0 || head_end == std::string::npos) return r;
    r.status = atoi(raw.c_str() + 9);
    size_t line = raw.find("\r\n") + 2;
    while (line < head_end) {
        size_t eol = raw.find("\r\n", line);
        size_t colon = raw.find(':', line);
        if (colon < eol) {
            size_t v = colon + 1;
            while (v < eol && raw[v] == ' ') v++;
            r.headers[Lower(raw.substr(line, colon - line))] = raw.substr(v, eol - v);
        }
        line = eol + 2;
    }
    std::string body = raw.substr(head_end + 4);
    if (Lower(r.headers["transfer-encoding"]) == "chunked") {
        size_t at = 0;
        for (;;) {
            size_t eol = body.find("\r\n", at);
            if (eol == std::string::npos) break;
            size_t n = strtoul(body.c_str() + at, nullptr, 16);
            if (n == 0 || eol + 2 + n > body.size()) break;
            r.body.append(body, eol + 2, n);
            at = eol + 2 + n + 2;
        }
    } else {
        r.body = body;
    }
    return r;
}

Response Http(uint16_t port, const std::string &method, const std::string &path,
              const std::string &body = "", const std::string &key = "")
{
    int fd = Connect(port);
    if (fd < 0) return {};
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    if (!key.empty()) req += "Authorization: Bearer " + key + "\r\n";
    if (method == "POST")
        req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n" + body;
    std::string raw = SendAll(fd, req) ? ReadToEnd(fd) : "";
    close(fd);
    return ParseResponse(raw);
}

const cJSON *Get(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }

std::string Str(const cJSON *o, const char *key)
{
    const cJSON *v = Get(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

// Checks an OpenAI error object: {"error": {"message": non-empty, "type": string, ...}}.
void ExpectError(const Response &r, int status, const char *code = nullptr)
{
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.headers.count("content-type") ? r.headers.at("content-type") : "", "application/json");
    Json j = Parse(r.body);
    ASSERT_TRUE(j) << r.body;
    const cJSON *e = Get(j.get(), "error");
    ASSERT_TRUE(cJSON_IsObject(e)) << r.body;
    EXPECT_FALSE(Str(e, "message").empty()) << r.body;
    EXPECT_FALSE(Str(e, "type").empty()) << r.body;
    if (code) EXPECT_EQ(Str(e, "code"), code) << r.body;
}

// The value of a metric line "name{labels} value" (or "name value"); -1 when absent.
double Metric(const std::string &text, const std::string &series)
{
    size_t at = 0;
    while ((at = text.find(series + " ", at)) != std::string::npos) {
        if (at == 0 || text[at - 1] == '\n') return atof(text.c_str() + at + series.size() + 1);
        at++;
    }
    return -1;
}

#define START_SERVER(server, ...)                                                               \
    if (!HaveModel()) GTEST_SKIP() << ModelPath() << " is absent: tools/fetch_models.sh downloads it"; \
    Server server;                                                                              \
    ASSERT_TRUE(server.Start({__VA_ARGS__})) << server.Log()

#define STOP_SERVER(server)                                                                     \
    do {                                                                                        \
        double took = 0;                                                                        \
        EXPECT_EQ(server.Stop(10, &took), 0) << server.Log();                                   \
        EXPECT_LT(took, 5.0) << server.Log();                                                   \
    } while (0)

const char *kKey = "vki-test-key-0123456789";

/* With a vision encoder (--mmproj) /v1/models says so, as the chat page asks before it shows
 * its image button: the tiny Gemma 3 of tools/gen_vision_golden.py. */
TEST(ServeHttp, ModelsSayWhetherImagesAreAccepted)
{
    const std::string dir = std::string(VKI_TEST_DATA) + "/vision/";
    Server server;
    ASSERT_TRUE(server.Start({"-m", dir + "gemma3.text.gguf", "--mmproj", dir + "gemma3.mmproj.gguf",
                              "--ctx", "512", "--parallel", "1"}))
        << server.Log();
    Response r = Http(server.port(), "GET", "/v1/models");
    EXPECT_EQ(r.status, 200) << r.body;
    Json models = Parse(r.body);
    ASSERT_TRUE(models) << r.body;
    const cJSON *model = cJSON_GetArrayItem(Get(models.get(), "data"), 0);
    EXPECT_EQ(Str(model, "id"), "gemma3.text.gguf");
    const cJSON *modalities = Get(model, "modalities");
    EXPECT_TRUE(cJSON_IsTrue(Get(modalities, "vision"))) << r.body;
    EXPECT_TRUE(cJSON_IsFalse(Get(modalities, "audio"))) << r.body;
    STOP_SERVER(server);
}

/* ---- Refusals and the endpoints that need no model run ---------------------------------------- */

TEST(ServeHttp, EndpointsAndRefusals)
{
    START_SERVER(server, "--ctx", "256", "--parallel", "1", "--api-key", kKey);
    uint16_t port = server.port();

    // /health needs no key.
    Response r = Http(port, "GET", "/health");
    EXPECT_EQ(r.status, 200);
    Json health = Parse(r.body);
    ASSERT_TRUE(health) << r.body;
    EXPECT_EQ(Str(health.get(), "status"), "ok");

    // The key: absent, wrong, one byte short, one byte long; a body is not looked at first.
    for (const std::string &key : {std::string(), std::string("wrong"),
                                   std::string(kKey).substr(0, strlen(kKey) - 1), std::string(kKey) + "x"}) {
        SCOPED_TRACE("key '" + key + "'");
        ExpectError(Http(port, "GET", "/v1/models", "", key), 401, "invalid_api_key");
        ExpectError(Http(port, "GET", "/metrics", "", key), 401);
        ExpectError(Http(port, "POST", "/v1/chat/completions", "{", key), 401);
    }

    // /v1/models with the key: the OpenAI list, the id the serving line named.
    r = Http(port, "GET", "/v1/models", "", kKey);
    EXPECT_EQ(r.status, 200) << r.body;
    Json models = Parse(r.body);
    ASSERT_TRUE(models) << r.body;
    EXPECT_EQ(Str(models.get(), "object"), "list");
    const cJSON *data = Get(models.get(), "data");
    ASSERT_TRUE(cJSON_IsArray(data) && cJSON_GetArraySize(data) == 1) << r.body;
    EXPECT_EQ(Str(cJSON_GetArrayItem(data, 0), "id"), server.model_id());
    EXPECT_EQ(server.model_id(), "SmolLM2-135M-Instruct.Q4_1.gguf");
    EXPECT_EQ(Str(cJSON_GetArrayItem(data, 0), "object"), "model");
    // No --mmproj: the chat page offers no image button.
    const cJSON *modalities = Get(cJSON_GetArrayItem(data, 0), "modalities");
    EXPECT_TRUE(cJSON_IsFalse(Get(modalities, "vision"))) << r.body;

    // Unknown path 404, wrong method 405 (with Allow).
    ExpectError(Http(port, "GET", "/v1/no-such-thing", "", kKey), 404);
    r = Http(port, "GET", "/v1/chat/completions", "", kKey);
    ExpectError(r, 405);
    EXPECT_NE(r.headers["allow"].find("POST"), std::string::npos);
    ExpectError(Http(port, "DELETE", "/v1/models", "", kKey), 405);

    // Bodies the parser refuses: 400 with an error object that parses.
    ExpectError(Http(port, "POST", "/v1/chat/completions", "{\"messages\": [", kKey), 400);
    ExpectError(Http(port, "POST", "/v1/chat/completions", "\xff\xfe garbage", kKey), 400);
    ExpectError(Http(port, "POST", "/v1/chat/completions", "{\"messages\": 7}", kKey), 400);
    ExpectError(Http(port, "POST", "/v1/completions", "{\"max_tokens\": 4}", kKey), 400);
    // Another model's name.
    ExpectError(Http(port, "POST", "/v1/chat/completions",
                     "{\"model\":\"gpt-9\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", kKey),
                404, "model_not_found");

    // 413 for a 5 MiB body, answered from the headers alone (the body is never sent here).
    {
        int fd = Connect(port);
        ASSERT_GE(fd, 0);
        std::string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                           std::string(kKey) + "\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(5 << 20) + "\r\n\r\n";
        ASSERT_TRUE(SendAll(fd, head));
        Response big = ParseResponse(ReadToEnd(fd));
        close(fd);
        ExpectError(big, 413);
    }
    // The same sent in chunks (no Content-Length): refused at its end.
    {
        int fd = Connect(port);
        ASSERT_GE(fd, 0);
        std::string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                           std::string(kKey) + "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        std::string chunk(65536, 'x');
        bool sent = SendAll(fd, head);
        char size[32];
        snprintf(size, sizeof size, "%zx\r\n", chunk.size());
        for (int i = 0; sent && i < 80; i++) sent = SendAll(fd, size + chunk + "\r\n");
        if (sent) SendAll(fd, "0\r\n\r\n");
        Response big = ParseResponse(ReadToEnd(fd));
        close(fd);
        ExpectError(big, 413);
    }

    // The page, and a CORS preflight.
    r = Http(port, "GET", "/");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["content-type"], "text/html; charset=utf-8");
    EXPECT_NE(Lower(r.body).find("<html"), std::string::npos);
    r = Http(port, "OPTIONS", "/v1/chat/completions");
    EXPECT_EQ(r.status, 204);
    EXPECT_EQ(r.headers["access-control-allow-origin"], "*");
    EXPECT_NE(r.headers["access-control-allow-headers"].find("Authorization"), std::string::npos);

    // /metrics counted what happened above.
    r = Http(port, "GET", "/metrics", "", kKey);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["content-type"].rfind("text/plain; version=0.0.4", 0), 0u) << r.headers["content-type"];
    EXPECT_GE(Metric(r.body, "vkinfer_requests_total{endpoint=\"/v1/models\",status=\"401\"}"), 4);
    EXPECT_GE(Metric(r.body, "vkinfer_requests_total{endpoint=\"/v1/chat/completions\",status=\"413\"}"), 2);
    EXPECT_GE(Metric(r.body, "vkinfer_requests_total{endpoint=\"other\",status=\"404\"}"), 1);
    EXPECT_EQ(Metric(r.body, "vkinfer_slots_total"), 1);
    EXPECT_EQ(Metric(r.body, "vkinfer_queue_length"), 0);
    EXPECT_NE(r.body.find("# TYPE vkinfer_requests_total counter"), std::string::npos);
    EXPECT_NE(r.body.find("# TYPE vkinfer_slots_busy gauge"), std::string::npos);

    // Still serving after all that.
    EXPECT_EQ(Http(port, "GET", "/health").status, 200);
    STOP_SERVER(server);
}

/* ---- Greedy completions --------------------------------------------------------------------- */

const char *kQuestion = "What is the capital of France?";

// `vkinfer generate --chat --temp 0 -n N --json`: the reference text.
std::string CliGreedy(const std::string &prompt, int n, bool chat)
{
    std::string cmd = std::string("'") + VKINFER_EXE + "' generate -m '" + ModelPath() + "' -p '" + prompt +
                      "' -n " + std::to_string(n) + " --temp 0 --ctx 256 --json" + (chat ? " --chat" : "") +
                      " 2>/dev/null";
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) return "";
    std::string out;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, got);
    pclose(p);
    Json j = Parse(out);
    return j ? Str(j.get(), "text") : "<generate failed>";
}

struct Stream {
    std::string text;          // the deltas joined
    std::string finish;        // the last finish_reason
    bool role_first = false;   // the first chunk had role "assistant"
    bool done_last = false;    // "data: [DONE]" ended it
    bool usage = false;        // a usage chunk came
    int events = 0;
    bool all_parse = true;
};

Stream ReadEvents(const std::string &body, bool chat)
{
    Stream s;
    size_t at = 0;
    while (at < body.size()) {
        size_t end = body.find("\n\n", at);
        if (end == std::string::npos) end = body.size();
        std::string ev = body.substr(at, end - at);
        at = end + 2;
        if (ev.empty() || ev[0] == ':') continue;
        s.events++;
        if (ev.rfind("data: ", 0) != 0) {
            s.all_parse = false;
            continue;
        }
        std::string data = ev.substr(6);
        s.done_last = data == "[DONE]";
        if (s.done_last) continue;
        Json j = Parse(data);
        if (!j) {
            s.all_parse = false;
            continue;
        }
        if (Get(j.get(), "usage") && cJSON_IsObject(Get(j.get(), "usage"))) s.usage = true;
        const cJSON *c = cJSON_GetArrayItem(Get(j.get(), "choices"), 0);
        if (!c) continue;
        const cJSON *delta = chat ? Get(c, "delta") : c;
        if (s.events == 1 && chat) s.role_first = Str(delta, "role") == "assistant";
        s.text += Str(delta, chat ? "content" : "text");
        if (cJSON_IsString(Get(c, "finish_reason"))) s.finish = Str(c, "finish_reason");
    }
    return s;
}

TEST(ServeHttp, GreedyAnswersMatchTheCommandLine)
{
    START_SERVER(server, "--ctx", "256", "--parallel", "2");
    uint16_t port = server.port();
    std::string want = CliGreedy(kQuestion, 8, true);
    ASSERT_FALSE(want.empty());

    std::string body = std::string("{\"messages\":[{\"role\":\"user\",\"content\":\"") + kQuestion +
                       "\"}],\"max_tokens\":8,\"temperature\":0";
    Response r = Http(port, "POST", "/v1/chat/completions", body + "}");
    ASSERT_EQ(r.status, 200) << r.body << server.Log();
    Json j = Parse(r.body);
    ASSERT_TRUE(j) << r.body;
    EXPECT_EQ(Str(j.get(), "object"), "chat.completion");
    EXPECT_EQ(Str(j.get(), "model"), server.model_id());
    const cJSON *choice = cJSON_GetArrayItem(Get(j.get(), "choices"), 0);
    EXPECT_EQ(Str(Get(choice, "message"), "content"), want);
    const cJSON *usage = Get(j.get(), "usage");
    ASSERT_TRUE(cJSON_IsObject(usage)) << r.body;
    EXPECT_GT(Get(usage, "prompt_tokens")->valueint, 5);
    int generated = Get(usage, "completion_tokens")->valueint;
    EXPECT_LE(generated, 8);
    EXPECT_EQ(Str(choice, "finish_reason"), generated == 8 ? "length" : "stop");

    // Streamed: the same text in events, the role first, the finish reason, usage, [DONE].
    r = Http(port, "POST", "/v1/chat/completions",
             body + ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.headers["content-type"], "text/event-stream");
    Stream s = ReadEvents(r.body, true);
    EXPECT_TRUE(s.all_parse) << r.body;
    EXPECT_TRUE(s.role_first) << r.body;
    EXPECT_TRUE(s.done_last) << r.body;
    EXPECT_TRUE(s.usage) << r.body;
    EXPECT_EQ(s.text, want);
    EXPECT_EQ(s.finish, generated == 8 ? "length" : "stop");

    // A raw completion, streamed, against generate without --chat.
    std::string want_raw = CliGreedy("The capital of France is", 6, false);
    r = Http(port, "POST", "/v1/completions",
             "{\"prompt\":\"The capital of France is\",\"max_tokens\":6,\"temperature\":0,\"stream\":true}");
    ASSERT_EQ(r.status, 200) << r.body;
    s = ReadEvents(r.body, false);
    EXPECT_TRUE(s.all_parse && s.done_last) << r.body;
    EXPECT_EQ(s.text, want_raw);

    // A client that hangs up mid-stream frees its slot: the busy gauge falls back to 0.
    {
        int fd = Connect(port);
        ASSERT_GE(fd, 0);
        std::string long_body = std::string("{\"messages\":[{\"role\":\"user\",\"content\":\"Tell a long story.\"}],"
                                            "\"max_tokens\":200,\"temperature\":0,\"stream\":true}");
        ASSERT_TRUE(SendAll(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
                                    std::to_string(long_body.size()) + "\r\n\r\n" + long_body));
        char buf[4096];
        ASSERT_GT(recv(fd, buf, sizeof buf, 0), 0); // the headers (and the role chunk): it started
        close(fd);
        double busy = -1;
        for (int i = 0; i < 100; i++) { // 10 s
            busy = Metric(Http(port, "GET", "/metrics").body, "vkinfer_slots_busy");
            if (busy == 0) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        EXPECT_EQ(busy, 0) << server.Log();
        std::string m = Http(port, "GET", "/metrics").body;
        EXPECT_GE(Metric(m, "vkinfer_jobs_total{result=\"cancelled\"}"), 1) << m;
    }

    // SIGTERM while a request is in flight: the client gets an answer (a stream ends with an
    // error event and [DONE]) and the process exits 0.
    Response in_flight;
    std::thread t([&] {
        in_flight = Http(port, "POST", "/v1/chat/completions",
                         "{\"messages\":[{\"role\":\"user\",\"content\":\"Count to one hundred.\"}],"
                         "\"max_tokens\":200,\"stream\":true}");
    });
    for (int i = 0; i < 100 && Metric(Http(port, "GET", "/metrics").body, "vkinfer_slots_busy") < 1; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    STOP_SERVER(server);
    t.join();
    EXPECT_EQ(in_flight.status, 200) << in_flight.body;
    Stream cut = ReadEvents(in_flight.body, true);
    EXPECT_TRUE(cut.done_last) << in_flight.body;
}

} // namespace
