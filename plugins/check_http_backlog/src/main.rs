fn main() {
    procguard_common::run("HTTP_BACKLOG", check_http_backlog::check);
}
