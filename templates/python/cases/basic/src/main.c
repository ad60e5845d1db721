// TODO: split this file
int main(void) {
    return 0; // TODO return a code
}
